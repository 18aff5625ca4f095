package main

// Virtual disks as the lab keeps them: a tree of VMDK files per disk. Every
// file is a text descriptor plus a data file holding the FULL raw image (a
// delta in the lab is a full copy, so any node can be read on its own).

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/google/uuid"
	"github.com/vmware/govmomi/object"
)

const blockSize = 64 * 1024

var zeroBlock = make([]byte, blockSize)

// digest of one 64 KiB block of frozen data.
type digest struct {
	sum  [16]byte
	zero bool
}

// node is one VMDK (descriptor + data) in a disk's tree.
type node struct {
	desc   string // datastore path of the descriptor, "[ds] vm/vm-000001.vmdk"
	data   string // local path of the data file (full raw image)
	parent *node
}

// disk is one virtual disk of a VM, keyed by device key.
type disk struct {
	key      int32
	uuid     string // backing.uuid, ESXi style "6000C29x-...."
	capacity int64
	current  *node
	nodes    []*node
	changeID string // changeId shown on the VM's current backing
	cbt      cbtDisk
}

// localPath maps "[ds] dir/file" to the datastore's local directory.
func (l *lab) localPath(dsPath string) string {
	var p object.DatastorePath
	if !p.FromString(dsPath) {
		return ""
	}
	dir, ok := l.datastores()[p.Datastore]
	if !ok {
		return ""
	}
	return filepath.Join(dir, p.Path)
}

// newDiskUUID returns a backing uuid in the form ESXi reports.
func newDiskUUID() string {
	u := uuid.New().String()
	return "6000C29" + u[7:]
}

// descriptor text for a base (flat) or delta VMDK.
func descriptor(capacity int64, dataName, parentName, diskUUID string) string {
	sectors := capacity / 512
	cid := crc32.ChecksumIEEE([]byte(dataName))
	createType, extent, parentCID, hint := "vmfs", "VMFS", "ffffffff", ""
	if parentName != "" {
		createType, extent = "vmfsSparse", "VMFSSPARSE"
		parentCID = fmt.Sprintf("%08x", crc32.ChecksumIEEE([]byte(parentName)))
		hint = fmt.Sprintf("parentFileNameHint=\"%s\"\n", parentName)
	}
	cyl := sectors / (255 * 63)
	if cyl < 1 {
		cyl = 1
	}
	u := strings.ReplaceAll(diskUUID, "-", "")
	var pairs []string
	for i := 0; i+2 <= len(u); i += 2 {
		pairs = append(pairs, u[i:i+2])
	}
	return fmt.Sprintf(`# Disk DescriptorFile
version=1
encoding="UTF-8"
CID=%08x
parentCID=%s
createType="%s"
%s
# Extent description
RW %d %s "%s"

# The Disk Data Base
#DDB

ddb.adapterType = "lsilogic"
ddb.geometry.cylinders = "%d"
ddb.geometry.heads = "255"
ddb.geometry.sectors = "63"
ddb.longContentID = "%08x%024x"
ddb.uuid = "%s"
ddb.virtualHWVersion = "13"
# lab: every extent is a raw full image of the disk (deltas are full copies)
`, cid, parentCID, createType, hint, sectors, extent, dataName, cyl, cid, cid, strings.Join(pairs, " "))
}

// writeDescriptor (re)writes the descriptor of n.
func (l *lab) writeDescriptor(d *disk, n *node) error {
	parent := ""
	if n.parent != nil {
		parent = path.Base(n.parent.desc)
	}
	text := descriptor(d.capacity, filepath.Base(n.data), parent, d.uuid)
	return os.WriteFile(l.localPath(n.desc), []byte(text), 0o644)
}

// extentOf reads the data file name from a descriptor's RW extent line.
func extentOf(descPath string) string {
	b, err := os.ReadFile(descPath)
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "RW ") {
			if i := strings.Index(line, `"`); i >= 0 {
				return filepath.Join(filepath.Dir(descPath), strings.Trim(line[i:], `" `))
			}
		}
	}
	return ""
}

// newRoot registers an existing or freshly created base disk: it makes sure the
// descriptor has text and the flat file exists with the full (sparse) size.
func (l *lab) newRoot(key int32, fileName, diskUUID string, capacity int64) (*disk, error) {
	if diskUUID == "" {
		diskUUID = newDiskUUID()
	}
	d := &disk{key: key, uuid: diskUUID, capacity: capacity}
	local := l.localPath(fileName)
	if local == "" {
		return nil, fmt.Errorf("no datastore for %s", fileName)
	}
	n := &node{desc: fileName, data: extentOf(local)}
	if n.data == "" {
		n.data = strings.TrimSuffix(local, ".vmdk") + "-flat.vmdk"
		if err := l.writeDescriptor(d, n); err != nil {
			return nil, err
		}
	}
	if err := growFile(n.data, capacity); err != nil {
		return nil, err
	}
	d.current, d.nodes = n, []*node{n}
	return d, nil
}

// growFile creates the file if needed and extends it (sparse) to size.
func growFile(name string, size int64) error {
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if st.Size() < size {
		return f.Truncate(size)
	}
	return nil
}

// newDelta creates the next ESXi-style delta "<base>-00000N.vmdk" under parent.
func (l *lab) newDelta(d *disk, parent *node) (*node, error) {
	root := d.nodes[0].desc
	stem := strings.TrimSuffix(root, ".vmdk")
	for i := 1; i < 1000; i++ {
		desc := fmt.Sprintf("%s-%06d.vmdk", stem, i)
		if _, err := os.Stat(l.localPath(desc)); err == nil {
			continue
		}
		n := &node{desc: desc, parent: parent}
		n.data = strings.TrimSuffix(l.localPath(desc), ".vmdk") + "-delta.vmdk"
		d.nodes = append(d.nodes, n)
		return n, l.writeDescriptor(d, n)
	}
	return nil, fmt.Errorf("no free delta name for %s", root)
}

// children lists the nodes whose parent is n.
func (d *disk) children(n *node) []*node {
	var out []*node
	for _, c := range d.nodes {
		if c.parent == n {
			out = append(out, c)
		}
	}
	return out
}

// drop removes n's files and forgets it.
func (l *lab) drop(d *disk, n *node) {
	_ = os.Remove(n.data)
	_ = os.Remove(l.localPath(n.desc))
	for i, m := range d.nodes {
		if m == n {
			d.nodes = append(d.nodes[:i], d.nodes[i+1:]...)
			break
		}
	}
}

// chain returns n and its ancestors, base first.
func chain(n *node) []*node {
	var out []*node
	for ; n != nil; n = n.parent {
		out = append([]*node{n}, out...)
	}
	return out
}

// copyData copies src to dst block by block (zero blocks left as holes) and
// returns the digests of the data read. With dst == "" it only digests.
func copyData(src, dst string, capacity int64) ([]digest, error) {
	in, err := os.Open(src)
	if err != nil {
		return nil, err
	}
	defer in.Close()
	var out *os.File
	if dst != "" {
		if out, err = os.Create(dst); err != nil {
			return nil, err
		}
		defer out.Close()
	}
	buf := make([]byte, blockSize)
	sums := make([]digest, 0, (capacity+blockSize-1)/blockSize)
	for off := int64(0); off < capacity; off += blockSize {
		n := int64(blockSize)
		if capacity-off < n {
			n = capacity - off
		}
		b := buf[:n]
		got, err := in.ReadAt(b, off)
		if err != nil && err != io.EOF {
			return nil, err
		}
		copy(b[got:], zeroBlock) // past EOF reads as zeros
		dg := digest{zero: bytes.Equal(b, zeroBlock[:n])}
		h := sha256.Sum256(b)
		copy(dg.sum[:], h[:16])
		sums = append(sums, dg)
		if out != nil && !dg.zero {
			if _, err := out.WriteAt(b, off); err != nil {
				return nil, err
			}
		}
	}
	if out != nil {
		if err := out.Truncate(capacity); err != nil {
			return nil, err
		}
	}
	return sums, nil
}
