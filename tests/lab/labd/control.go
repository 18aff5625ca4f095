package main

// Control endpoints under /lab/ (plain JSON, loopback only):
//   GET  /lab/info                       site, datastore name -> local dir, VM names
//   GET  /lab/vm?name=app01              disks (current + per snapshot data files), CBT state
//   POST /lab/reset-cbt?vm=app01         new CBT epoch per disk, old changeIds forgotten
//   POST /lab/defer-consolidate?vm=app01&enabled=1
//   POST /lab/config?qcda_max_extents=N  extents per QueryChangedDiskAreas reply
//   GET  /lab/counters, POST /lab/counters/reset   SOAP calls per method

import (
	"encoding/json"
	"net/http"
	"sort"
	"strconv"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/types"
)

type diskJSON struct {
	Key        int32  `json:"key"`
	Descriptor string `json:"descriptor"`
	Data       string `json:"data"`
	Capacity   int64  `json:"capacity"`
	UUID       string `json:"uuid,omitempty"`
	ChangeID   string `json:"change_id"`
}

func writeJSON(w http.ResponseWriter, status int, v interface{}) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func (l *lab) serveControl(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	post := r.Method == http.MethodPost
	switch {
	case r.URL.Path == "/lab/info":
		var names []string
		for _, o := range simulator.Map.All("VirtualMachine") {
			names = append(names, o.(*simulator.VirtualMachine).Name)
		}
		sort.Strings(names)
		writeJSON(w, 200, map[string]interface{}{"site": l.site, "datastores": l.datastores(), "vms": names})
	case r.URL.Path == "/lab/counters" && !post:
		l.mu.Lock()
		defer l.mu.Unlock()
		writeJSON(w, 200, l.counters)
	case r.URL.Path == "/lab/counters/reset" && post:
		l.mu.Lock()
		l.counters = map[string]int{}
		l.mu.Unlock()
		writeJSON(w, 200, map[string]bool{"reset": true})
	case r.URL.Path == "/lab/config" && post:
		n, err := strconv.Atoi(q.Get("qcda_max_extents"))
		if err != nil || n < 1 {
			writeJSON(w, 400, map[string]string{"error": "qcda_max_extents must be a positive integer"})
			return
		}
		l.mu.Lock()
		l.maxExtents = n
		l.mu.Unlock()
		writeJSON(w, 200, map[string]int{"qcda_max_extents": n})
	case r.URL.Path == "/lab/vm" && !post:
		vm, v := l.vmByName(q.Get("name"))
		if vm == nil {
			writeJSON(w, 404, map[string]string{"error": "no such VM"})
			return
		}
		writeJSON(w, 200, l.describe(vm, v))
	case (r.URL.Path == "/lab/reset-cbt" || r.URL.Path == "/lab/defer-consolidate") && post:
		vm, v := l.vmByName(q.Get("vm"))
		if vm == nil {
			writeJSON(w, 404, map[string]string{"error": "no such VM"})
			return
		}
		if r.URL.Path == "/lab/reset-cbt" {
			l.resetCBT(v)
		} else {
			v.mu.Lock()
			v.deferConsolidate = q.Get("enabled") != "0"
			v.mu.Unlock()
		}
		writeJSON(w, 200, l.describe(vm, v))
	default:
		writeJSON(w, 404, map[string]string{"error": "unknown control endpoint"})
	}
}

// describe reports a VM's disks as the lab keeps them.
func (l *lab) describe(vm *simulator.VirtualMachine, v *labVM) map[string]interface{} {
	v.mu.Lock()
	defer v.mu.Unlock()
	var disks []diskJSON
	for _, d := range v.disks {
		disks = append(disks, diskJSON{Key: d.key, Descriptor: d.current.desc, Data: d.current.data,
			Capacity: d.capacity, UUID: d.uuid, ChangeID: d.changeID})
	}
	sort.Slice(disks, func(i, j int) bool { return disks[i].Key < disks[j].Key })
	var snaps []map[string]interface{}
	var walk func([]types.VirtualMachineSnapshotTree)
	walk = func(t []types.VirtualMachineSnapshotTree) {
		for _, st := range t {
			if s := v.snaps[st.Snapshot.Value]; s != nil {
				var sd []diskJSON
				for key, x := range s.disks {
					sd = append(sd, diskJSON{Key: key, Descriptor: x.node.desc, Data: x.node.data, Capacity: x.capacity, ChangeID: x.changeID})
				}
				sort.Slice(sd, func(i, j int) bool { return sd[i].Key < sd[j].Key })
				snaps = append(snaps, map[string]interface{}{"name": st.Name, "moref": st.Snapshot.Value, "disks": sd})
			}
			walk(st.ChildSnapshotList)
		}
	}
	simulator.Map.WithLock(vm, func() {
		if vm.Snapshot != nil {
			walk(vm.Snapshot.RootSnapshotList)
		}
	})
	return map[string]interface{}{
		"name": vm.Name, "moref": vm.Self.Value, "instance_uuid": vm.Config.InstanceUuid,
		"disks": disks, "snapshots": snaps, "cbt_active": v.cbtActive, "cbt_pending": v.cbtPending,
		"defer_consolidate": v.deferConsolidate, "consolidation_needed": v.needsConsolidate,
	}
}
