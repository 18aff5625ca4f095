package main

// config.changeVersion, as vCenter keeps it: a new value after every change of
// the VM's configuration, and ReconfigVM_Task with a stale spec.changeVersion
// fails with ConcurrentAccess (optimistic concurrency for read-modify-write of
// extraConfig). vcsim 0.24 never sets it.

import (
	"sync"
	"time"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/types"
)

var changeVersions struct {
	sync.Mutex
	last time.Time
}

// nextChangeVersion is a timestamp in vCenter's format, strictly increasing.
func nextChangeVersion() string {
	changeVersions.Lock()
	defer changeVersions.Unlock()
	now := time.Now().UTC()
	if !now.After(changeVersions.last) {
		now = changeVersions.last.Add(time.Microsecond)
	}
	changeVersions.last = now
	return now.Format("2006-01-02T15:04:05.000000Z")
}

// staleChangeVersion is the fault for a reconfigure based on an old read.
func staleChangeVersion(vm *simulator.VirtualMachine, want string) types.BaseMethodFault {
	if want == "" {
		return nil
	}
	var have string
	simulator.Map.WithLock(vm, func() { have = vm.Config.ChangeVersion })
	if want == have {
		return nil
	}
	return &types.ConcurrentAccess{}
}
