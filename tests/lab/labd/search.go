package main

// SearchIndex.FindAllByUuid: vCenter and ESXi answer it, vcsim 0.24 does not
// (it only has FindByUuid, which cannot report duplicates). Answered here from
// the simulator's inventory, with the datacenter scope honoured.

import (
	"strings"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/types"
)

// inDatacenter reports whether an entity sits below the datacenter dc.
func inDatacenter(ref types.ManagedObjectReference, dc types.ManagedObjectReference) bool {
	for i := 0; i < 64; i++ { // inventory depth is small; the bound guards a malformed tree
		if ref == dc {
			return true
		}
		e, ok := simulator.Map.Get(ref).(mo.Entity)
		if !ok || e.Entity().Parent == nil {
			return false
		}
		ref = *e.Entity().Parent
	}
	return false
}

func findAllByUUID(req *types.FindAllByUuid) []types.ManagedObjectReference {
	refs := []types.ManagedObjectReference{}
	if !req.VmSearch {
		return refs // host search by hardware UUID is not used by the project
	}
	instance := req.InstanceUuid != nil && *req.InstanceUuid
	want := strings.ToLower(req.Uuid)
	for _, o := range simulator.Map.All("VirtualMachine") {
		vm, ok := o.(*simulator.VirtualMachine)
		if !ok || vm.Config == nil {
			continue
		}
		got := vm.Config.Uuid
		if instance {
			got = vm.Config.InstanceUuid
		}
		if strings.ToLower(got) != want {
			continue
		}
		if req.Datacenter != nil && !inDatacenter(vm.Reference(), *req.Datacenter) {
			continue
		}
		refs = append(refs, vm.Reference())
	}
	return refs
}
