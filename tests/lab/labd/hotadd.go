package main

// Hot-add proxies. A VM whose extraConfig holds labd.proxy = "TRUE" is a proxy
// VM. Like a Linux guest with disk.EnableUUID = "TRUE", it shows every disk
// attached to it as a device named by the disk's UUID:
//
//	<device dir>/wwn-0x<backing.uuid in lower case without dashes>
//
// (udev's wwn-0x6000c29... name; the kernel's scsi-36000c29... alias is not
// made). The device dir is $LAB_DEVICE_DIR, else "devices" in the site's work
// directory (labctl writes it into lab.json as device_dir).
//
// A disk attached in a persistent mode is published as a symlink to its current
// data file: writes reach the disk. A disk attached in a non-persistent mode
// (independent_nonpersistent, nonpersistent) is published as a private
// read-only copy made at attach time, the lab's redo log: nothing written to it
// reaches the disk, and it is dropped at detach. Without disk.EnableUUID the
// guest shows no by-id name, so nothing is published.
//
// Attaching (with no file operation) a disk that is open for writing elsewhere
// fails as ESXi's file lock does: published writable on another proxy, or the
// current disk of another powered-on VM.

import (
	"fmt"
	"log"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/types"
)

const proxyKey = "labd.proxy"

type device struct {
	src      string // data file the device shows
	readOnly bool
	capacity int64
}

// hotDevs: proxy moid -> device name -> what is published.
var hotDevs = struct {
	sync.Mutex
	m map[string]map[string]device
}{m: map[string]map[string]device{}}

func deviceDir() string {
	if d := os.Getenv("LAB_DEVICE_DIR"); d != "" {
		return d
	}
	wd, err := os.Getwd()
	if err != nil {
		wd = "."
	}
	return filepath.Join(wd, "devices")
}

// deviceName is udev's by-id name of a VMware disk with disk.EnableUUID set.
func deviceName(diskUUID string) string {
	return "wwn-0x" + strings.ToLower(strings.ReplaceAll(diskUUID, "-", ""))
}

func extraValue(vm *simulator.VirtualMachine, key string) string {
	for _, o := range vm.Config.ExtraConfig {
		if ov := o.GetOptionValue(); ov.Key == key {
			if s, ok := ov.Value.(string); ok {
				return s
			}
		}
	}
	return ""
}

func readOnlyMode(mode string) bool {
	return mode == string(types.VirtualDiskModeIndependent_nonpersistent) ||
		mode == string(types.VirtualDiskModeNonpersistent)
}

// descriptorUUID reads ddb.uuid ("60 00 C2 9a ...") of a descriptor back into
// the backing.uuid form ("6000C29a-....-....-....-............").
func descriptorUUID(descPath string) string {
	b, err := os.ReadFile(descPath)
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(line, "ddb.uuid") {
			continue
		}
		i := strings.Index(line, `"`)
		if i < 0 {
			return ""
		}
		h := strings.ReplaceAll(strings.Trim(line[i:], `" `), " ", "")
		if len(h) != 32 {
			return ""
		}
		return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
	}
	return ""
}

// afterHotadd runs after every successful ReconfigVM (v.mu held): a proxy's disks
// take the UUID of their descriptor (as ESXi reads it when an existing disk is
// added) and its published devices follow its disks.
func (l *lab) afterHotadd(v *labVM) {
	vm, ok := simulator.Map.Get(v.ref).(*simulator.VirtualMachine)
	if !ok {
		return
	}
	var proxy, enableUUID bool
	modes := map[int32]string{}
	simulator.Map.WithLock(vm, func() {
		proxy = strings.EqualFold(extraValue(vm, proxyKey), "true")
		enableUUID = strings.EqualFold(extraValue(vm, "disk.EnableUUID"), "true")
		for _, dev := range vm.Config.Hardware.Device {
			if vd, ok := dev.(*types.VirtualDisk); ok {
				if b, ok := vd.Backing.(*types.VirtualDiskFlatVer2BackingInfo); ok {
					modes[vd.Key] = b.DiskMode
				}
			}
		}
	})
	want := map[string]device{}
	if proxy {
		rerender := false
		for _, d := range v.disks {
			if u := descriptorUUID(l.localPath(d.current.desc)); u != "" && u != d.uuid {
				d.uuid, rerender = u, true
			}
			if enableUUID {
				want[deviceName(d.uuid)] = device{src: d.current.data, readOnly: readOnlyMode(modes[d.key]), capacity: d.capacity}
			}
		}
		if rerender {
			l.render(v)
		}
	}
	publish(v.ref.Value, want)
}

// publish makes the proxy's published devices exactly `want`.
func publish(proxy string, want map[string]device) {
	hotDevs.Lock()
	defer hotDevs.Unlock()
	dir := deviceDir()
	cur := hotDevs.m[proxy]
	if cur == nil {
		cur = map[string]device{}
	}
	for name, d := range cur {
		if w, ok := want[name]; !ok || w != d {
			if err := os.Remove(filepath.Join(dir, name)); err != nil && !os.IsNotExist(err) {
				log.Printf("hot-add: unpublish %s: %v", name, err)
			}
			delete(cur, name)
		}
	}
	for name, w := range want {
		if _, ok := cur[name]; ok {
			continue
		}
		if err := makeDevice(dir, name, w); err != nil {
			log.Printf("hot-add: publish %s: %v", name, err)
			continue
		}
		cur[name] = w
	}
	if len(cur) == 0 {
		delete(hotDevs.m, proxy)
	} else {
		hotDevs.m[proxy] = cur
	}
}

func makeDevice(dir, name string, d device) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	final := filepath.Join(dir, name)
	tmp := filepath.Join(dir, "."+name+".tmp")
	_ = os.Remove(tmp)
	if !d.readOnly {
		if err := os.Symlink(d.src, tmp); err != nil {
			return err
		}
		return os.Rename(tmp, final)
	}
	if _, err := copyData(d.src, tmp, d.capacity); err != nil {
		_ = os.Remove(tmp)
		return err
	}
	if err := os.Chmod(tmp, 0o444); err != nil {
		return err
	}
	return os.Rename(tmp, final)
}

// unpublishVM drops the devices of a destroyed VM.
func unpublishVM(ref types.ManagedObjectReference) {
	publish(ref.Value, nil)
}

// checkHotadd refuses to add an existing disk that is open for writing
// elsewhere to a proxy, the way ESXi's file lock does (runs before vcsim, under v.mu).
func (l *lab) checkHotadd(v *labVM, spec *types.VirtualMachineConfigSpec) types.BaseMethodFault {
	vm, ok := simulator.Map.Get(v.ref).(*simulator.VirtualMachine)
	if !ok {
		return nil
	}
	proxy := false
	simulator.Map.WithLock(vm, func() { proxy = strings.EqualFold(extraValue(vm, proxyKey), "true") })
	if !proxy {
		return nil
	}
	for _, change := range spec.DeviceChange {
		ds := change.GetVirtualDeviceConfigSpec()
		vd, ok := ds.Device.(*types.VirtualDisk)
		if !ok || ds.Operation != types.VirtualDeviceConfigSpecOperationAdd || ds.FileOperation != "" {
			continue
		}
		b, ok := vd.Backing.(*types.VirtualDiskFlatVer2BackingInfo)
		if !ok || b.FileName == "" {
			continue
		}
		data := extentOf(l.localPath(b.FileName))
		if data == "" {
			continue
		}
		if holder := l.writer(v.ref, data); holder != "" {
			return &types.FileLocked{FileFault: types.FileFault{File: fmt.Sprintf("%s (open for writing by %s)", b.FileName, holder)}}
		}
	}
	return nil
}

// writer names a VM other than self holding `data` open for writing, or "".
// Other VMs are only try-locked (the caller holds its own VM's lock).
func (l *lab) writer(self types.ManagedObjectReference, data string) string {
	hotDevs.Lock()
	for proxy, devs := range hotDevs.m {
		for _, d := range devs {
			if proxy != self.Value && !d.readOnly && d.src == data {
				hotDevs.Unlock()
				return entityName(types.ManagedObjectReference{Type: "VirtualMachine", Value: proxy})
			}
		}
	}
	hotDevs.Unlock()
	l.mu.Lock()
	others := make([]*labVM, 0, len(l.vms))
	for id, o := range l.vms {
		if id != self.Value {
			others = append(others, o)
		}
	}
	l.mu.Unlock()
	for _, o := range others {
		vm, ok := simulator.Map.Get(o.ref).(*simulator.VirtualMachine)
		if !ok {
			continue
		}
		var on bool
		simulator.Map.WithLock(vm, func() { on = vm.Runtime.PowerState == types.VirtualMachinePowerStatePoweredOn })
		if !on {
			continue
		}
		if !o.mu.TryLock() { // busy in another hooked call: no lock order to respect, skip it
			continue
		}
		holds := false
		for _, d := range o.disks {
			holds = holds || (d.current != nil && d.current.data == data)
		}
		o.mu.Unlock()
		if holds {
			return vm.Name
		}
	}
	return ""
}
