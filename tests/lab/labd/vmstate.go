package main

// Lab state per VM, the hooks around vcsim methods, and rendering the lab's
// disk model back into vcsim's objects (device backings, snapshot configs,
// file layout).

import (
	"log"
	"os"
	"path"
	"path/filepath"
	"sort"
	"sync"

	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/types"
)

// lab is the state of one site.
type lab struct {
	site       string
	mu         sync.Mutex // guards the fields below
	vms        map[string]*labVM
	counters   map[string]int
	maxExtents int
	deferAll   bool
}

// snapDisk is a snapshot's frozen view of one disk.
type snapDisk struct {
	node     *node
	changeID string
	capacity int64
	digests  []digest
}

type snapState struct {
	ref   types.ManagedObjectReference
	vmsn  string // local path of the .vmsn file
	disks map[int32]*snapDisk
}

// labVM is what the lab adds to a vcsim VirtualMachine.
type labVM struct {
	mu               sync.Mutex // serialises operations on this VM
	ref              types.ManagedObjectReference
	disks            map[int32]*disk
	snaps            map[string]*snapState
	cbtActive        bool
	cbtPending       bool // enabled while powered on: waits for a stun
	deferConsolidate bool
	needsConsolidate bool
}

func newLab(site string, maxExtents int, deferAll bool) *lab {
	return &lab{site: site, vms: map[string]*labVM{}, counters: map[string]int{}, maxExtents: maxExtents, deferAll: deferAll}
}

func (l *lab) count(method string) {
	l.mu.Lock()
	l.counters[method]++
	l.mu.Unlock()
}

// datastores maps datastore name -> local directory.
func (l *lab) datastores() map[string]string {
	out := map[string]string{}
	for _, o := range simulator.Map.All("Datastore") {
		ds := o.(*simulator.Datastore)
		out[ds.Name] = ds.Info.GetDatastoreInfo().Url
	}
	return out
}

// vm returns the lab state of a VM, creating it on first use.
func (l *lab) vm(ref types.ManagedObjectReference) *labVM {
	l.mu.Lock()
	defer l.mu.Unlock()
	v := l.vms[ref.Value]
	if v == nil {
		v = &labVM{ref: ref, disks: map[int32]*disk{}, snaps: map[string]*snapState{}, deferConsolidate: l.deferAll}
		l.vms[ref.Value] = v
	}
	return v
}

func (l *lab) vmByName(name string) (*simulator.VirtualMachine, *labVM) {
	for _, o := range simulator.Map.All("VirtualMachine") {
		if vm := o.(*simulator.VirtualMachine); vm.Name == name {
			return vm, l.vm(vm.Self)
		}
	}
	return nil, nil
}

// hook describes the work around one vcsim call.
type hook struct {
	vm       *labVM
	pre      func()
	post     func(task *simulator.Task)
	entityVM *types.ManagedObjectReference // rewrite task.info.entity to this VM
	check    func() types.BaseMethodFault  // refuse the call before vcsim runs it (the task fails)
}

// hookFor returns the hook for methods whose effect the lab must complete.
func (l *lab) hookFor(m *simulator.Method) *hook {
	vmRef := m.This
	switch m.Body.(type) {
	case *types.RemoveSnapshot_Task, *types.RevertToSnapshot_Task:
		snap, ok := simulator.Map.Get(m.This).(*simulator.VirtualMachineSnapshot)
		if !ok {
			return nil
		}
		vmRef = snap.Vm
	case *types.CreateVM_Task:
		return &hook{post: func(t *simulator.Task) {
			if ref, ok := t.Info.Result.(types.ManagedObjectReference); ok {
				v := l.vm(ref)
				v.mu.Lock()
				defer v.mu.Unlock()
				l.syncDisks(v, true)
				l.render(v)
			}
		}}
	case *types.CreateSnapshot_Task, *types.RemoveAllSnapshots_Task, *types.RevertToCurrentSnapshot_Task,
		*types.ReconfigVM_Task, *types.Destroy_Task, *types.PowerOnVM_Task, *types.PowerOffVM_Task,
		*types.ResetVM_Task, *types.SuspendVM_Task:
	default:
		return nil
	}
	vm, ok := simulator.Map.Get(vmRef).(*simulator.VirtualMachine)
	if !ok {
		return nil
	}
	v := l.vm(vmRef)
	h := &hook{vm: v}
	switch req := m.Body.(type) {
	case *types.CreateSnapshot_Task:
		h.post = func(t *simulator.Task) { l.afterCreateSnapshot(v, t.Info.Result.(types.ManagedObjectReference)) }
	case *types.RemoveSnapshot_Task, *types.RemoveAllSnapshots_Task:
		h.entityVM = &vmRef
		h.pre = func() { protectSnapshotFiles(vm) }
		h.post = func(*simulator.Task) { l.afterRemoveSnapshots(v) }
	case *types.RevertToSnapshot_Task:
		h.entityVM = &vmRef
		h.post = func(*simulator.Task) { l.afterRevert(v, req.This) }
	case *types.RevertToCurrentSnapshot_Task:
		h.post = func(*simulator.Task) {
			if vm.Snapshot != nil && vm.Snapshot.CurrentSnapshot != nil {
				l.afterRevert(v, *vm.Snapshot.CurrentSnapshot)
			}
		}
	case *types.ReconfigVM_Task:
		h.check = func() types.BaseMethodFault {
			if fault := staleChangeVersion(vm, req.Spec.ChangeVersion); fault != nil {
				return fault
			}
			return l.checkHotadd(v, &req.Spec) // hotadd.go
		}
		h.post = func(*simulator.Task) { l.afterReconfig(v, &req.Spec); l.afterHotadd(v) }
	case *types.Destroy_Task:
		dir := filepath.Dir(l.localPath(vm.Config.Files.VmPathName))
		h.post = func(*simulator.Task) {
			if dir != "." && dir != "" {
				_ = os.RemoveAll(dir)
			}
			l.mu.Lock()
			delete(l.vms, vmRef.Value)
			l.mu.Unlock()
			unpublishVM(vmRef) // hotadd.go
		}
	default: // power operations stun the VM
		h.post = func(*simulator.Task) { l.stun(v) }
	}
	return h
}

// finishTask runs the post hook of a successful task and fixes vcsim's
// info.entity for snapshot tasks (it names the snapshot, pyvmomi expects the VM).
func (l *lab) finishTask(t *simulator.Task, h *hook) {
	if t.Info.State != types.TaskInfoStateSuccess {
		return
	}
	if h.post != nil {
		h.post(t)
	}
	if h.entityVM != nil {
		ref := *h.entityVM
		simulator.Map.WithLock(t, func() {
			simulator.Map.Update(t, []types.PropertyChange{{Name: "info.entity", Val: ref}})
			if vm, ok := simulator.Map.Get(ref).(*simulator.VirtualMachine); ok {
				t.Info.EntityName = vm.Name
			}
		})
	}
}

// protectSnapshotFiles keeps vcsim's removeSnapshotFiles from deleting files by
// stale layoutEx keys (RefreshStorageInfo re-keys them); the lab deletes .vmsn.
func protectSnapshotFiles(vm *simulator.VirtualMachine) {
	simulator.Map.WithLock(vm, func() {
		for i := range vm.LayoutEx.Snapshot {
			vm.LayoutEx.Snapshot[i].DataKey = -2
			vm.LayoutEx.Snapshot[i].MemoryKey = -2
		}
	})
}

// cloneDevices copies a device list, deep-copying disks and their backings.
func cloneDevices(devs []types.BaseVirtualDevice) []types.BaseVirtualDevice {
	out := make([]types.BaseVirtualDevice, len(devs))
	for i, d := range devs {
		if vd, ok := d.(*types.VirtualDisk); ok {
			c := *vd
			if b, ok := vd.Backing.(*types.VirtualDiskFlatVer2BackingInfo); ok {
				nb := *b
				c.Backing = &nb
			}
			out[i] = &c
			continue
		}
		out[i] = d
	}
	return out
}

// backing renders node n of d onto a copy of base.
func (l *lab) backing(base types.VirtualDiskFlatVer2BackingInfo, d *disk, n *node, changeID string) *types.VirtualDiskFlatVer2BackingInfo {
	b := base
	b.FileName = n.desc
	b.Uuid = d.uuid
	b.ChangeId = changeID
	b.Parent = nil
	if n.parent != nil {
		b.Parent = l.backing(base, d, n.parent, "")
	}
	return &b
}

// render writes the lab's model of v into vcsim: the VM's current disks, each
// snapshot's disks, the file layout and runtime.consolidationNeeded.
func (l *lab) render(v *labVM) {
	vm, ok := simulator.Map.Get(v.ref).(*simulator.VirtualMachine)
	if !ok {
		return
	}
	simulator.Map.WithLock(vm, func() {
		devs := cloneDevices(vm.Config.Hardware.Device)
		for _, dev := range devs {
			if vd, ok := dev.(*types.VirtualDisk); ok {
				if d := v.disks[vd.Key]; d != nil {
					if b, ok := vd.Backing.(*types.VirtualDiskFlatVer2BackingInfo); ok {
						vd.Backing = l.backing(*b, d, d.current, d.changeID)
						vd.CapacityInBytes, vd.CapacityInKB = d.capacity, d.capacity/1024
					}
				}
			}
		}
		need := v.needsConsolidate
		simulator.Map.Update(vm, []types.PropertyChange{
			{Name: "config.changeVersion", Val: nextChangeVersion()},
			{Name: "config.hardware.device", Val: devs},
			{Name: "config.changeTrackingEnabled", Val: v.cbtActive || v.cbtPending},
			{Name: "runtime.consolidationNeeded", Val: need},
			{Name: "summary.runtime.consolidationNeeded", Val: need},
		})
		l.relayout(vm, v)
	})
	for _, s := range v.snaps {
		snap, ok := simulator.Map.Get(s.ref).(*simulator.VirtualMachineSnapshot)
		if !ok {
			continue
		}
		simulator.Map.WithLock(snap, func() {
			for _, dev := range snap.Config.Hardware.Device {
				if vd, ok := dev.(*types.VirtualDisk); ok {
					sd, d := s.disks[vd.Key], v.disks[vd.Key]
					if b, ok := vd.Backing.(*types.VirtualDiskFlatVer2BackingInfo); ok && sd != nil && d != nil {
						vd.Backing = l.backing(*b, d, sd.node, sd.changeID)
						vd.CapacityInBytes, vd.CapacityInKB = sd.capacity, sd.capacity/1024
					}
				}
			}
		})
	}
}

// relayout rebuilds layout and layoutEx from the lab's model (vcsim's own
// RefreshStorageInfo re-keys files on every snapshot removal).
func (l *lab) relayout(vm *simulator.VirtualMachine, v *labVM) {
	var files []types.VirtualMachineFileLayoutExFileInfo
	keyOf := map[string]int32{}
	add := func(name string, kind types.VirtualMachineFileLayoutExFileType) int32 {
		if k, ok := keyOf[name]; ok {
			return k
		}
		var size int64
		if st, err := os.Stat(l.localPath(name)); err == nil {
			size = st.Size()
		}
		k := int32(len(files))
		keyOf[name] = k
		files = append(files, types.VirtualMachineFileLayoutExFileInfo{
			Key: k, Name: name, Type: string(kind), Size: size, UniqueSize: size, Accessible: types.NewBool(true),
		})
		return k
	}
	vmx := vm.Config.Files.VmPathName
	dir := path.Dir(vmx)
	add(vmx, types.VirtualMachineFileLayoutExFileTypeConfig)
	add(path.Join(dir, vm.Name+".nvram"), types.VirtualMachineFileLayoutExFileTypeNvram)
	add(path.Join(dir, "vmware.log"), types.VirtualMachineFileLayoutExFileTypeLog)

	diskLayout := func(key int32, top *node) (types.VirtualMachineFileLayoutExDiskLayout, types.VirtualMachineFileLayoutDiskLayout) {
		ex := types.VirtualMachineFileLayoutExDiskLayout{Key: key}
		dl := types.VirtualMachineFileLayoutDiskLayout{Key: key}
		for _, n := range chain(top) {
			dk := add(n.desc, types.VirtualMachineFileLayoutExFileTypeDiskDescriptor)
			ek := add(path.Join(path.Dir(n.desc), filepath.Base(n.data)), types.VirtualMachineFileLayoutExFileTypeDiskExtent)
			ex.Chain = append(ex.Chain, types.VirtualMachineFileLayoutExDiskUnit{FileKey: []int32{dk, ek}})
			dl.DiskFile = append(dl.DiskFile, n.desc)
		}
		return ex, dl
	}
	keys := make([]int, 0, len(v.disks))
	for k := range v.disks {
		keys = append(keys, int(k))
	}
	sort.Ints(keys)
	layout := types.VirtualMachineFileLayout{ConfigFile: vm.Layout.ConfigFile, LogFile: vm.Layout.LogFile, SwapFile: vm.Layout.SwapFile}
	layoutEx := types.VirtualMachineFileLayoutEx{Timestamp: vm.LayoutEx.Timestamp}
	for _, k := range keys {
		d := v.disks[int32(k)]
		ex, dl := diskLayout(d.key, d.current)
		layoutEx.Disk = append(layoutEx.Disk, ex)
		layout.Disk = append(layout.Disk, dl)
	}
	for _, s := range v.sortedSnaps() {
		dataKey := int32(-1)
		if s.vmsn != "" {
			dataKey = add(l.dsPathOf(s.vmsn, dir), types.VirtualMachineFileLayoutExFileTypeSnapshotData)
		}
		exs := types.VirtualMachineFileLayoutExSnapshotLayout{Key: s.ref, DataKey: dataKey, MemoryKey: -1}
		sl := types.VirtualMachineFileLayoutSnapshotLayout{Key: s.ref}
		if dataKey >= 0 {
			sl.SnapshotFile = append(sl.SnapshotFile, files[dataKey].Name)
		}
		for _, k := range keys {
			if sd := s.disks[int32(k)]; sd != nil {
				ex, dl := diskLayout(int32(k), sd.node)
				exs.Disk = append(exs.Disk, ex)
				sl.SnapshotFile = append(sl.SnapshotFile, dl.DiskFile...)
			}
		}
		layoutEx.Snapshot = append(layoutEx.Snapshot, exs)
		layout.Snapshot = append(layout.Snapshot, sl)
	}
	layoutEx.File = files
	simulator.Map.Update(vm, []types.PropertyChange{
		{Name: "layout", Val: &layout},
		{Name: "layoutEx", Val: &layoutEx},
	})
}

// dsPathOf turns a local file in the VM directory into "[ds] dir/file".
func (l *lab) dsPathOf(local, vmDir string) string {
	return path.Join(vmDir, filepath.Base(local))
}

func (v *labVM) sortedSnaps() []*snapState {
	out := make([]*snapState, 0, len(v.snaps))
	for _, s := range v.snaps {
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ref.Value < out[j].ref.Value })
	return out
}

// syncDisks brings the lab's disk model in line with the VM's devices: new disks
// get a descriptor and a sparse flat file of full size (and an ESXi-like device
// key when created), grown disks get a longer data file, removed disks are forgotten.
func (l *lab) syncDisks(v *labVM, created bool) {
	vm, ok := simulator.Map.Get(v.ref).(*simulator.VirtualMachine)
	if !ok {
		return
	}
	simulator.Map.WithLock(vm, func() {
		devs := object.VirtualDeviceList(vm.Config.Hardware.Device)
		seen := map[int32]bool{}
		for _, dev := range devs {
			vd, ok := dev.(*types.VirtualDisk)
			if !ok {
				continue
			}
			b, ok := vd.Backing.(*types.VirtualDiskFlatVer2BackingInfo)
			if !ok {
				continue
			}
			capacity := vd.CapacityInBytes
			if capacity == 0 {
				capacity = vd.CapacityInKB * 1024
			}
			if created && v.disks[vd.Key] == nil && (vd.Key < 2000 || vd.Key >= 3000) {
				rekeyDisk(devs, vd)
			}
			d := v.disks[vd.Key]
			switch {
			case d == nil:
				nd, err := l.newRoot(vd.Key, b.FileName, b.Uuid, capacity)
				if err != nil {
					log.Printf("disk %s: %v", b.FileName, err)
					continue
				}
				v.disks[vd.Key] = nd
			case capacity > d.capacity:
				d.capacity = capacity
				if err := growFile(d.current.data, capacity); err != nil {
					log.Printf("grow %s: %v", d.current.desc, err)
				}
				_ = l.writeDescriptor(d, d.current)
			}
			seen[vd.Key] = true
		}
		for k := range v.disks {
			if !seen[k] {
				delete(v.disks, k)
			}
		}
	})
}

// rekeyDisk gives a disk the key ESXi would: 2000 + 16*bus + unit.
func rekeyDisk(devs object.VirtualDeviceList, vd *types.VirtualDisk) {
	bus, unit := int32(0), int32(0)
	if vd.UnitNumber != nil {
		unit = *vd.UnitNumber
	}
	ctrl, _ := devs.FindByKey(vd.ControllerKey).(types.BaseVirtualController)
	if ctrl != nil {
		bus = ctrl.GetVirtualController().BusNumber
	}
	key := 2000 + 16*bus + unit
	for devs.FindByKey(key) != nil {
		key++
	}
	if ctrl != nil {
		c := ctrl.GetVirtualController()
		for i, k := range c.Device {
			if k == vd.Key {
				c.Device[i] = key
			}
		}
	}
	vd.Key = key
}

// snapshotTreeRefs lists every snapshot in the VM's tree.
func snapshotTreeRefs(vm *simulator.VirtualMachine) map[string]bool {
	out := map[string]bool{}
	var walk func([]types.VirtualMachineSnapshotTree)
	walk = func(t []types.VirtualMachineSnapshotTree) {
		for _, s := range t {
			out[s.Snapshot.Value] = true
			walk(s.ChildSnapshotList)
		}
	}
	if vm.Snapshot != nil {
		walk(vm.Snapshot.RootSnapshotList)
	}
	return out
}

// entityName is a small helper for logs and control output.
func entityName(ref types.ManagedObjectReference) string {
	if e, ok := simulator.Map.Get(ref).(mo.Entity); ok {
		return e.Entity().Name
	}
	return ref.Value
}
