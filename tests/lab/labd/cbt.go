package main

// Changed Block Tracking: per-disk epochs and changeIds "52 xx .. xx/<seq>",
// and QueryChangedDiskAreas answered exactly from per-block digests.

import (
	"fmt"
	"strings"

	"github.com/google/uuid"
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/types"
)

// cbtDisk is the tracking state of one disk: the epoch (changes on reset) and
// the digests of the data as of each changeId handed out.
type cbtDisk struct {
	epoch string
	seq   int
	known map[string][]digest
}

func newEpochID() string {
	u := uuid.New()
	u[0] = 0x52
	parts := make([]string, len(u))
	for i, b := range u {
		parts[i] = fmt.Sprintf("%02x", b)
	}
	return strings.Join(parts, " ")
}

// next hands out the next changeId for data with the given digests.
func (c *cbtDisk) next(sums []digest) string {
	c.seq++
	id := fmt.Sprintf("%s/%d", c.epoch, c.seq)
	c.known[id] = sums
	return id
}

// newEpoch starts tracking d afresh from its current data ("<epoch>/0").
func (l *lab) newEpoch(d *disk) {
	d.cbt = cbtDisk{epoch: newEpochID(), known: map[string][]digest{}}
	d.changeID = d.cbt.epoch + "/0"
	if sums, err := copyData(d.current.data, "", d.capacity); err == nil {
		d.cbt.known[d.changeID] = sums
	}
}

func (l *lab) activateCBT(v *labVM) {
	v.cbtPending, v.cbtActive = false, true
	for _, d := range v.disks {
		l.newEpoch(d)
	}
}

func (l *lab) deactivateCBT(v *labVM) {
	v.cbtPending, v.cbtActive = false, false
	for _, d := range v.disks {
		d.cbt, d.changeID = cbtDisk{}, ""
	}
}

// resetCBT simulates the tracking loss after a power failure: new epochs, old
// changeIds are forgotten.
func (l *lab) resetCBT(v *labVM) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.cbtActive {
		for _, d := range v.disks {
			l.newEpoch(d)
		}
	}
	l.render(v)
}

func (l *lab) queryChangedDiskAreas(req *types.QueryChangedDiskAreas) (*types.DiskChangeInfo, types.BaseMethodFault) {
	if _, ok := simulator.Map.Get(req.This).(*simulator.VirtualMachine); !ok {
		return nil, &types.ManagedObjectNotFound{Obj: req.This}
	}
	v := l.vm(req.This)
	v.mu.Lock()
	defer v.mu.Unlock()
	d := v.disks[req.DeviceKey]
	if d == nil {
		return nil, &types.InvalidArgument{InvalidProperty: "deviceKey"}
	}
	capacity, desc, data := d.capacity, d.current.desc, d.current.data
	var sums []digest
	if req.Snapshot != nil {
		s := v.snaps[req.Snapshot.Value]
		if s == nil {
			return nil, &types.InvalidArgument{InvalidProperty: "snapshot"}
		}
		sd := s.disks[req.DeviceKey]
		if sd == nil {
			return nil, &types.InvalidArgument{InvalidProperty: "deviceKey"}
		}
		sums, capacity, desc = sd.digests, sd.capacity, sd.node.desc
	}
	if req.StartOffset < 0 || req.StartOffset >= capacity {
		return nil, &types.InvalidArgument{InvalidProperty: "startOffset"}
	}
	if !v.cbtActive {
		return nil, &types.FileFault{File: desc}
	}
	var old []digest
	if req.ChangeId != "*" {
		var ok bool
		if old, ok = d.cbt.known[req.ChangeId]; !ok {
			return nil, &types.FileFault{File: desc}
		}
	}
	if sums == nil { // no snapshot: the live data
		var err error
		if sums, err = copyData(data, "", capacity); err != nil {
			return nil, &types.FileFault{File: desc}
		}
	}
	l.mu.Lock()
	max := l.maxExtents
	l.mu.Unlock()
	return changedAreas(sums, old, req.ChangeId == "*", req.StartOffset, capacity, max), nil
}

// changedAreas lists changed blocks from start on, merged into extents, at
// most max extents per reply; Length stops short of the disk end when more follow.
func changedAreas(sums, old []digest, all bool, start, capacity int64, max int) *types.DiskChangeInfo {
	info := &types.DiskChangeInfo{StartOffset: start, Length: capacity - start}
	changed := func(i int) bool {
		if all {
			return !sums[i].zero
		}
		return i >= len(old) || old[i].sum != sums[i].sum
	}
	for i := int(start / blockSize); i < len(sums); i++ {
		if !changed(i) {
			continue
		}
		off, end := int64(i)*blockSize, int64(i+1)*blockSize
		if off < start {
			off = start
		}
		if end > capacity {
			end = capacity
		}
		n := len(info.ChangedArea)
		if n > 0 {
			last := &info.ChangedArea[n-1]
			if last.Start+last.Length == off {
				last.Length = end - last.Start
				continue
			}
			if n >= max {
				info.Length = last.Start + last.Length - start
				return info
			}
		}
		info.ChangedArea = append(info.ChangedArea, types.DiskChangeExtent{Start: off, Length: end - off})
	}
	return info
}
