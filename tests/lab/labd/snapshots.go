package main

// Snapshots with real data: create freezes the current file and starts an
// ESXi-named delta (a full copy in the lab); remove/revert/consolidate keep
// every remaining snapshot's data and the current data right.

import (
	"log"
	"os"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/types"
)

func (l *lab) afterCreateSnapshot(v *labVM, ref types.ManagedObjectReference) {
	vm, ok1 := simulator.Map.Get(v.ref).(*simulator.VirtualMachine)
	snap, ok2 := simulator.Map.Get(ref).(*simulator.VirtualMachineSnapshot)
	if !ok1 || !ok2 {
		return
	}
	// vcsim shares the VM's device list with the snapshot config (shallow copy):
	// give the snapshot its own devices, and find the .vmsn vcsim created.
	var devs []types.BaseVirtualDevice
	s := &snapState{ref: ref, disks: map[int32]*snapDisk{}}
	simulator.Map.WithLock(vm, func() {
		devs = cloneDevices(vm.Config.Hardware.Device)
		for _, sl := range vm.LayoutEx.Snapshot {
			for _, f := range vm.LayoutEx.File {
				if sl.Key == ref && f.Key == sl.DataKey {
					s.vmsn = l.localPath(f.Name)
				}
			}
		}
	})
	simulator.Map.WithLock(snap, func() { snap.Config.Hardware.Device = devs })

	if v.cbtPending { // creating a snapshot stuns the VM
		l.activateCBT(v)
	}
	for key, d := range v.disks {
		frozen := d.current
		child, err := l.newDelta(d, frozen)
		if err != nil {
			log.Printf("snapshot %s: %v", frozen.desc, err)
			continue
		}
		sums, err := copyData(frozen.data, child.data, d.capacity)
		if err != nil {
			log.Printf("snapshot copy %s: %v", frozen.data, err)
		}
		d.current = child
		cid := ""
		if v.cbtActive {
			cid = d.cbt.next(sums)
		}
		d.changeID = cid
		s.disks[key] = &snapDisk{node: frozen, changeID: cid, capacity: d.capacity, digests: sums}
	}
	v.snaps[ref.Value] = s
	l.render(v)
}

// afterRemoveSnapshots forgets the snapshots vcsim removed (one, a subtree or
// all), deletes their .vmsn files, then consolidates unless deferred.
func (l *lab) afterRemoveSnapshots(v *labVM) {
	vm, ok := simulator.Map.Get(v.ref).(*simulator.VirtualMachine)
	if !ok {
		return
	}
	var live map[string]bool
	simulator.Map.WithLock(vm, func() { live = snapshotTreeRefs(vm) })
	for id, s := range v.snaps {
		if !live[id] {
			if s.vmsn != "" {
				_ = os.Remove(s.vmsn)
			}
			delete(v.snaps, id)
		}
	}
	if v.cbtPending {
		l.activateCBT(v)
	}
	if v.deferConsolidate {
		v.needsConsolidate = l.collapsible(v)
	} else {
		l.consolidate(v)
	}
	l.render(v)
}

// afterRevert discards the current delta and starts a new one from the
// snapshot's frozen data.
func (l *lab) afterRevert(v *labVM, ref types.ManagedObjectReference) {
	s := v.snaps[ref.Value]
	if s == nil {
		return
	}
	if v.cbtPending {
		l.activateCBT(v)
	}
	for key, d := range v.disks {
		sd := s.disks[key]
		if sd == nil {
			continue
		}
		if !v.referencedBySnapshot(d, d.current) {
			l.drop(d, d.current)
		}
		n, err := l.newDelta(d, sd.node)
		if err != nil {
			log.Printf("revert %s: %v", sd.node.desc, err)
			continue
		}
		if _, err := copyData(sd.node.data, n.data, sd.capacity); err != nil {
			log.Printf("revert copy %s: %v", sd.node.data, err)
		}
		d.current, d.capacity, d.changeID = n, sd.capacity, sd.changeID
	}
	if !v.deferConsolidate {
		l.consolidate(v)
	}
	l.render(v)
}

func (v *labVM) referencedBySnapshot(d *disk, n *node) bool {
	for _, s := range v.snaps {
		if sd := s.disks[d.key]; sd != nil && sd.node == n {
			return true
		}
	}
	return false
}

// collapseOne finds one node no snapshot and not the VM uses: a leaf is deleted,
// a node with one child gets the child merged into it (the child's full image
// replaces its data; the child's users now use it). apply=false only reports.
func (l *lab) collapseOne(v *labVM, d *disk, apply bool) bool {
	for _, n := range d.nodes {
		if n == d.current || v.referencedBySnapshot(d, n) {
			continue
		}
		kids := d.children(n)
		if len(kids) > 1 {
			continue
		}
		if !apply {
			return true
		}
		if len(kids) == 0 {
			l.drop(d, n)
			return true
		}
		c := kids[0]
		if err := os.Rename(c.data, n.data); err != nil {
			log.Printf("merge %s into %s: %v", c.desc, n.desc, err)
			return false
		}
		c.data = n.data // so drop() below keeps the merged data
		for _, m := range d.nodes {
			if m.parent == c {
				m.parent = n
			}
		}
		if d.current == c {
			d.current = n
		}
		for _, s := range v.snaps {
			if sd := s.disks[d.key]; sd != nil && sd.node == c {
				sd.node = n
			}
		}
		_ = os.Remove(l.localPath(c.desc))
		for i, m := range d.nodes {
			if m == c {
				d.nodes = append(d.nodes[:i], d.nodes[i+1:]...)
				break
			}
		}
		_ = l.writeDescriptor(d, n)
		return true
	}
	return false
}

func (l *lab) collapsible(v *labVM) bool {
	for _, d := range v.disks {
		if l.collapseOne(v, d, false) {
			return true
		}
	}
	return false
}

func (l *lab) consolidate(v *labVM) {
	for _, d := range v.disks {
		for i := 0; i < 10000 && l.collapseOne(v, d, true); i++ {
		}
	}
	v.needsConsolidate = false
}

// consolidateTask answers ConsolidateVMDisks_Task.
func (l *lab) consolidateTask(ref types.ManagedObjectReference) (*types.ManagedObjectReference, types.BaseMethodFault) {
	vm, ok := simulator.Map.Get(ref).(*simulator.VirtualMachine)
	if !ok {
		return nil, &types.ManagedObjectNotFound{Obj: ref}
	}
	v := l.vm(ref)
	task := simulator.CreateTask(vm, "consolidateVMDisks", func(*simulator.Task) (types.AnyType, types.BaseMethodFault) {
		v.mu.Lock()
		defer v.mu.Unlock()
		l.consolidate(v)
		l.render(v)
		return nil, nil
	})
	tref := task.Run()
	return &tref, nil
}

// afterReconfig completes ReconfigVM: disks added/grown, CBT on/off, extraConfig.
func (l *lab) afterReconfig(v *labVM, spec *types.VirtualMachineConfigSpec) {
	vm, ok := simulator.Map.Get(v.ref).(*simulator.VirtualMachine)
	if !ok {
		return
	}
	l.syncDisks(v, true)
	if on := spec.ChangeTrackingEnabled; on != nil {
		switch {
		case !*on:
			l.deactivateCBT(v)
		case v.cbtActive || v.cbtPending:
		case vm.Runtime.PowerState == types.VirtualMachinePowerStatePoweredOn:
			v.cbtPending = true // takes effect at the next stun
		default:
			l.activateCBT(v)
		}
	}
	if len(spec.ExtraConfig) > 0 {
		dedupeExtraConfig(vm)
	}
	l.render(v)
}

// stun is a power operation: pending CBT takes effect.
func (l *lab) stun(v *labVM) {
	if v.cbtPending {
		l.activateCBT(v)
	}
	l.render(v)
}

// dedupeExtraConfig: vcsim appends every option; ESXi keeps one value per key
// and removes a key set to "".
func dedupeExtraConfig(vm *simulator.VirtualMachine) {
	simulator.Map.WithLock(vm, func() {
		idx := map[string]int{}
		var out []types.BaseOptionValue
		for _, o := range vm.Config.ExtraConfig {
			key := o.GetOptionValue().Key
			if i, ok := idx[key]; ok {
				out[i] = o
				continue
			}
			idx[key] = len(out)
			out = append(out, o)
		}
		kept := out[:0]
		for _, o := range out {
			if s, ok := o.GetOptionValue().Value.(string); !ok || s != "" {
				kept = append(kept, o)
			}
		}
		simulator.Map.Update(vm, []types.PropertyChange{{Name: "config.extraConfig", Val: kept}})
	})
}
