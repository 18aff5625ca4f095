package main

// Guest power as ESXi does it, which vcsim 0.24 does not:
//   - ShutdownGuest needs VMware Tools running (else vim.fault.ToolsUnavailable)
//     and a powered-on VM (else InvalidPowerState). It returns at once; the
//     guest powers the VM off a little later (shutdown_delay_ms, default 300),
//     or never when the lab plays a hung guest (shutdown=ignore).
//   - guest.toolsRunningStatus follows the power state: guestToolsRunning
//     while powered on (unless the lab stops Tools), guestToolsNotRunning
//     otherwise. vcsim leaves it unset (model VMs) or not running (CreateVM).
//
// Control endpoint:
//   POST /lab/guest?vm=NAME[&tools=running|stopped][&shutdown=clean|ignore][&shutdown_delay_ms=N]

import (
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"time"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/types"
)

const defaultShutdownDelay = 300 * time.Millisecond

// guestConf is how the lab plays one VM's guest OS.
type guestConf struct {
	ToolsStopped   bool  `json:"tools_stopped"`
	IgnoreShutdown bool  `json:"ignore_shutdown"`
	DelayMS        int64 `json:"shutdown_delay_ms"`
}

var guests = struct {
	sync.Mutex
	conf     map[string]*guestConf // by VM moid
	initOnce sync.Once
}{conf: map[string]*guestConf{}}

func guestOf(ref types.ManagedObjectReference) guestConf {
	guests.Lock()
	defer guests.Unlock()
	if c := guests.conf[ref.Value]; c != nil {
		return *c
	}
	return guestConf{DelayMS: int64(defaultShutdownDelay / time.Millisecond)}
}

// syncTools sets guest.toolsRunningStatus of a VM from its power state.
func syncTools(ref types.ManagedObjectReference) {
	vm, ok := simulator.Map.Get(ref).(*simulator.VirtualMachine)
	if !ok {
		return
	}
	conf := guestOf(ref)
	simulator.Map.WithLock(vm, func() {
		status := string(types.VirtualMachineToolsRunningStatusGuestToolsNotRunning)
		if vm.Runtime.PowerState == types.VirtualMachinePowerStatePoweredOn && !conf.ToolsStopped {
			status = string(types.VirtualMachineToolsRunningStatusGuestToolsRunning)
		}
		if vm.Guest != nil && vm.Guest.ToolsRunningStatus == status {
			return
		}
		simulator.Map.Update(vm, []types.PropertyChange{
			{Name: "guest.toolsRunningStatus", Val: status},
			{Name: "summary.guest.toolsRunningStatus", Val: status},
		})
	})
}

func syncAllTools() {
	for _, o := range simulator.Map.All("VirtualMachine") {
		syncTools(o.(*simulator.VirtualMachine).Self)
	}
}

// serveGuestPower answers ShutdownGuest and runs the power tasks (with their
// usual hooks) so that Tools status follows; false for any other method.
func (f *front) serveGuestPower(w http.ResponseWriter, r *http.Request, body []byte, name string, method *simulator.Method) bool {
	guests.initOnce.Do(syncAllTools) // the first SOAP call comes after the site is set up
	switch req := method.Body.(type) {
	case *types.ShutdownGuest:
		if !authenticated(r) {
			writeFault(w, "not authenticated", &types.NotAuthenticated{})
			return true
		}
		if msg, fault := f.lab.shutdownGuest(req.This); fault != nil {
			writeFault(w, msg, fault)
			return true
		}
		writeResult(w, name, nil)
		return true
	case *types.PowerOnVM_Task, *types.PowerOffVM_Task, *types.ResetVM_Task, *types.SuspendVM_Task:
		h := f.lab.hookFor(method)
		if h == nil {
			return false
		}
		rec := httptest.NewRecorder()
		f.runHooked(rec, r, body, name, h)
		syncTools(method.This)
		copyRecorder(w, rec)
		return true
	}
	return false
}

// shutdownGuest checks the VM can be asked, then lets the guest power off
// after its delay (asynchronously, like a real guest).
func (l *lab) shutdownGuest(ref types.ManagedObjectReference) (string, types.BaseMethodFault) {
	vm, ok := simulator.Map.Get(ref).(*simulator.VirtualMachine)
	if !ok {
		f := &types.ManagedObjectNotFound{Obj: ref}
		return faultText(f), f
	}
	var power types.VirtualMachinePowerState
	var tools string
	simulator.Map.WithLock(vm, func() {
		power = vm.Runtime.PowerState
		if vm.Guest != nil {
			tools = vm.Guest.ToolsRunningStatus
		}
	})
	if power != types.VirtualMachinePowerStatePoweredOn {
		return "The attempted operation cannot be performed in the current state (" + string(power) + ").",
			&types.InvalidPowerState{RequestedState: types.VirtualMachinePowerStatePoweredOn, ExistingState: power}
	}
	if tools != string(types.VirtualMachineToolsRunningStatusGuestToolsRunning) {
		return "Cannot complete operation because VMware Tools is not running in this virtual machine.",
			&types.ToolsUnavailable{}
	}
	conf := guestOf(ref)
	if conf.IgnoreShutdown {
		return "", nil
	}
	go func() {
		time.Sleep(time.Duration(conf.DelayMS) * time.Millisecond)
		l.guestPoweredOff(vm)
	}()
	return "", nil
}

// guestPoweredOff is the end of a guest shutdown: the VM is off, and the
// power-operation hook (stun) runs as for PowerOffVM_Task.
func (l *lab) guestPoweredOff(vm *simulator.VirtualMachine) {
	v := l.vm(vm.Self)
	v.mu.Lock()
	defer v.mu.Unlock()
	off := types.VirtualMachinePowerStatePoweredOff
	changed := false
	simulator.Map.WithLock(vm, func() {
		if vm.Runtime.PowerState != types.VirtualMachinePowerStatePoweredOn {
			return
		}
		changed = true
		simulator.Map.Update(vm, []types.PropertyChange{
			{Name: "runtime.powerState", Val: off},
			{Name: "summary.runtime.powerState", Val: off},
		})
	})
	if changed {
		l.stun(v)
	}
	syncTools(vm.Self)
}

// serveGuestControl is POST /lab/guest.
func (l *lab) serveGuestControl(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	vm, _ := l.vmByName(q.Get("vm"))
	if vm == nil || r.Method != http.MethodPost {
		writeJSON(w, 404, map[string]string{"error": "POST /lab/guest?vm=NAME with an existing VM"})
		return
	}
	guests.Lock()
	conf := guests.conf[vm.Self.Value]
	if conf == nil {
		conf = &guestConf{DelayMS: int64(defaultShutdownDelay / time.Millisecond)}
		guests.conf[vm.Self.Value] = conf
	}
	if t := q.Get("tools"); t != "" {
		conf.ToolsStopped = t == "stopped"
	}
	if s := q.Get("shutdown"); s != "" {
		conf.IgnoreShutdown = s == "ignore"
	}
	if d, err := strconv.ParseInt(q.Get("shutdown_delay_ms"), 10, 64); err == nil && d >= 0 {
		conf.DelayMS = d
	}
	out := *conf
	guests.Unlock()
	syncTools(vm.Self)
	writeJSON(w, 200, out)
}
