package main

// Inventory of the two sites. source: a vCenter with SRC-DC / SRC-Cluster (two
// hosts), datastore src-ds1 and four powered-on VMs with seeded guest data.
// target: an ESXi host dr-esx01 with datastore dr-ds1, networks "VM Network"
// and "DR Network", no VMs.

import (
	"context"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"

	"github.com/vmware/govmomi/find"
	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/simulator/esx"
	"github.com/vmware/govmomi/vim25"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/types"
)

type vmSpec struct {
	name     string
	host     int
	disksMiB []int64
	seed     int64
	variant  int64 // >0: template data of seed, then a few regions rewritten with this seed
}

var sourceVMs = []vmSpec{
	{name: "app01", host: 0, disksMiB: []int64{64, 96}, seed: 101},
	{name: "db01", host: 0, disksMiB: []int64{64, 32, 48}, seed: 202},
	{name: "web01", host: 1, disksMiB: []int64{64}, seed: 303},
	{name: "web02", host: 1, disksMiB: []int64{64}, seed: 303, variant: 304},
}

func newModel(site string) *simulator.Model {
	if site == "target" {
		m := simulator.ESX()
		m.Datastore, m.Machine, m.Autostart = 0, 0, false
		return m
	}
	m := simulator.VPX()
	m.Datacenter, m.Cluster, m.ClusterHost, m.Host = 1, 1, 2, 0
	m.Portgroup, m.Datastore, m.Machine, m.Autostart = 0, 0, 0, false
	return m
}

func rename(ref types.ManagedObjectReference, name string) {
	e := simulator.Map.Get(ref).(mo.Entity)
	e.Entity().Name = name
	if h, ok := e.(*simulator.HostSystem); ok {
		h.Summary.Config.Name = name
	}
}

// setupSite builds the inventory of the site through vcsim's in-process client.
func (l *lab) setupSite(ctx context.Context, c *vim25.Client, dsRoot string, scale int64) error {
	finder := find.NewFinder(c, true)
	dc, err := finder.DefaultDatacenter(ctx)
	if err != nil {
		return err
	}
	var hosts []types.ManagedObjectReference
	dsName := "src-ds1"
	if l.site == "target" {
		dsName = "dr-ds1"
		rename(esx.HostSystem.Reference(), "dr-esx01")
		hosts = append(hosts, esx.HostSystem.Reference())
	} else {
		rename(dc.Reference(), "SRC-DC")
		for _, o := range simulator.Map.All("ClusterComputeResource") {
			rename(o.Reference(), "SRC-Cluster")
		}
		for i, o := range simulator.Map.All("HostSystem") {
			rename(o.Reference(), fmt.Sprintf("src-esx%02d", i+1))
			hosts = append(hosts, o.Reference())
		}
	}
	dir := filepath.Join(dsRoot, dsName)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, h := range hosts {
		dss, err := object.NewHostSystem(c, h).ConfigManager().DatastoreSystem(ctx)
		if err != nil {
			return err
		}
		if _, err := dss.CreateLocalDatastore(ctx, dsName, dir); err != nil {
			return err
		}
	}
	if l.site == "target" {
		ns, err := object.NewHostSystem(c, hosts[0]).ConfigManager().NetworkSystem(ctx)
		if err != nil {
			return err
		}
		return ns.AddPortGroup(ctx, types.HostPortGroupSpec{Name: "DR Network", VlanId: 0, VswitchName: "vSwitch0"})
	}
	folders, err := dc.Folders(ctx)
	if err != nil {
		return err
	}
	finder.SetDatacenter(dc)
	cluster, err := finder.DefaultClusterComputeResource(ctx)
	if err != nil {
		return err
	}
	pool, err := cluster.ResourcePool(ctx)
	if err != nil {
		return err
	}
	_, netErr := finder.Network(ctx, "VM Network")
	for _, s := range sourceVMs {
		host := object.NewHostSystem(c, hosts[s.host%len(hosts)])
		if err := l.createSourceVM(ctx, c, folders.VmFolder, pool, host, dsName, s, scale, netErr == nil); err != nil {
			return fmt.Errorf("%s: %w", s.name, err)
		}
	}
	return nil
}

func (l *lab) createSourceVM(ctx context.Context, c *vim25.Client, folder *object.Folder, pool *object.ResourcePool,
	host *object.HostSystem, ds string, s vmSpec, scale int64, withNIC bool) error {
	spec := types.VirtualMachineConfigSpec{
		Name: s.name, GuestId: "otherLinux64Guest", NumCPUs: 2, MemoryMB: 2048,
		Files: &types.VirtualMachineFileInfo{VmPathName: fmt.Sprintf("[%s]", ds)},
	}
	add := func(d types.BaseVirtualDevice, create bool) {
		ds := &types.VirtualDeviceConfigSpec{Operation: types.VirtualDeviceConfigSpecOperationAdd, Device: d}
		if create {
			ds.FileOperation = types.VirtualDeviceConfigSpecFileOperationCreate
		}
		spec.DeviceChange = append(spec.DeviceChange, ds)
	}
	scsi := &types.ParaVirtualSCSIController{}
	scsi.Key, scsi.BusNumber, scsi.SharedBus = 1000, 0, types.VirtualSCSISharingNoSharing
	add(scsi, false)
	for i, mib := range s.disksMiB {
		size := mib * scale / 100 << 20
		if size < 1<<20 {
			size = 1 << 20
		}
		unit := int32(i)
		name := fmt.Sprintf("[%s] %s/%s.vmdk", ds, s.name, s.name)
		if i > 0 {
			name = fmt.Sprintf("[%s] %s/%s_%d.vmdk", ds, s.name, s.name, i)
		}
		disk := &types.VirtualDisk{CapacityInBytes: size, CapacityInKB: size / 1024}
		disk.Key, disk.ControllerKey, disk.UnitNumber = int32(2000+i), 1000, &unit
		disk.Backing = &types.VirtualDiskFlatVer2BackingInfo{
			VirtualDeviceFileBackingInfo: types.VirtualDeviceFileBackingInfo{FileName: name},
			DiskMode:                     string(types.VirtualDiskModePersistent),
			ThinProvisioned:              types.NewBool(true),
			Uuid:                         newDiskUUID(),
		}
		add(disk, true)
	}
	if withNIC {
		nic := &types.VirtualVmxnet3{}
		nic.Key, nic.AddressType = 4000, string(types.VirtualEthernetCardMacTypeGenerated)
		nic.Backing = &types.VirtualEthernetCardNetworkBackingInfo{
			VirtualDeviceDeviceBackingInfo: types.VirtualDeviceDeviceBackingInfo{DeviceName: "VM Network"},
		}
		add(nic, false)
	}
	task, err := folder.CreateVM(ctx, spec, pool, host)
	if err != nil {
		return err
	}
	info, err := task.WaitForResult(ctx, nil)
	if err != nil {
		return err
	}
	ref := info.Result.(types.ManagedObjectReference)
	v := l.vm(ref)
	l.syncDisks(v, true)
	for key, d := range v.disks {
		seed := s.seed*10 + int64(key-2000)
		if err := seedDisk(d.current.data, d.capacity, seed, 0); err != nil {
			return err
		}
		if s.variant > 0 { // same template, then a few guest-specific regions
			if err := seedDisk(d.current.data, d.capacity, s.variant*10+int64(key-2000), 90); err != nil {
				return err
			}
		}
	}
	l.render(v)
	ptask, err := object.NewVirtualMachine(c, ref).PowerOn(ctx)
	if err != nil {
		return err
	}
	return ptask.Wait(ctx)
}

// seedDisk writes deterministic guest data: per MiB chunk, with probability
// (100-skip)% * 70%, 512 KiB..1 MiB of pseudo-random bytes at the chunk start;
// the rest stays zero (sparse). skip>0 rewrites only a few chunks.
func seedDisk(name string, capacity, seed int64, skip int) error {
	f, err := os.OpenFile(name, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	rng := rand.New(rand.NewSource(seed))
	buf := make([]byte, 1<<20)
	for off := int64(0); off < capacity; off += 1 << 20 {
		if skip > 0 && rng.Intn(100) < skip {
			continue
		}
		if rng.Intn(100) >= 70 {
			continue
		}
		n := int64(blockSize) * int64(8+rng.Intn(9))
		if off+n > capacity {
			n = capacity - off
		}
		rng.Read(buf[:n])
		if _, err := f.WriteAt(buf[:n], off); err != nil {
			return err
		}
	}
	return nil
}
