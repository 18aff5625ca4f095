# -*- coding: utf-8 -*-
# Copyright: (c) 2026, replicator.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import pytest

from ansible_collections.replicator.vsphere.plugins.module_utils.datapath import vmdk

FLAT = '''# Disk DescriptorFile
version=1
encoding="UTF-8"
CID=fffffffe
parentCID=ffffffff
createType="vmfs"

# Extent description
RW 41943040 VMFS "disk-flat.vmdk"

ddb.adapterType = "lsilogic"
ddb.uuid = "60 00 C2 9a"
'''

DELTA = '''# Disk DescriptorFile
version=1
CID=1a2b3c4d
parentCID=fffffffe
createType="vmfsSparse"
parentFileNameHint="disk.vmdk"
RW 41943040 VMFSSPARSE "disk-000001-delta.vmdk"
'''


def test_parse_flat():
    d = vmdk.parse_descriptor(FLAT)
    assert d.create_type == 'vmfs' and not d.has_parent and not d.is_sparse
    assert d.capacity == 41943040 * 512
    e = vmdk.flat_extent(d)
    assert (e.filename, e.kind, e.offset) == ('disk-flat.vmdk', 'VMFS', 0)
    assert d.ddb['adapterType'] == 'lsilogic'


def test_delta_refused_with_nbd_hint():
    d = vmdk.parse_descriptor(DELTA)
    assert d.has_parent and d.parent_hint == 'disk.vmdk'
    with pytest.raises(vmdk.VmdkError, match='nbd transport'):
        vmdk.flat_extent(d)


def test_sparse_refused():
    d = vmdk.parse_descriptor(FLAT.replace('vmfs"', 'monolithicSparse"').replace(' VMFS ', ' SPARSE '))
    with pytest.raises(vmdk.VmdkError, match='sparse'):
        vmdk.flat_extent(d)
    assert vmdk.sparse_kind(b'KDMV\x01\x00') is not None


def test_flat_with_offset_and_multi_extent():
    d = vmdk.parse_descriptor(FLAT.replace('RW 41943040 VMFS "disk-flat.vmdk"', 'RW 2048 FLAT "x.img" 128'))
    e = vmdk.flat_extent(d)
    assert e.offset == 128 * 512 and e.size == 2048 * 512
    two = FLAT.replace('RW 41943040 VMFS "disk-flat.vmdk"', 'RW 2048 FLAT "a-f001.vmdk" 0\nRW 2048 FLAT "a-f002.vmdk" 0')
    with pytest.raises(vmdk.VmdkError, match='2 extents'):
        vmdk.flat_extent(vmdk.parse_descriptor(two))


def test_garbage_refused():
    with pytest.raises(vmdk.VmdkError):
        vmdk.parse_descriptor('hello\n')
    with pytest.raises(vmdk.VmdkError):
        vmdk.parse_descriptor('version=1\n')
    assert vmdk.looks_like_descriptor(FLAT.encode())
