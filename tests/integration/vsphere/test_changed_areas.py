# -*- coding: utf-8 -*-
# Copyright: (c) 2026, replicator.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""changed_areas() against the lab: pagination to the disk end, exact areas, FileFault -> CbtUnavailable."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import pytest
from pyVmomi import vim

from ansible_collections.replicator.vsphere.plugins.module_utils.vsphere.changed_areas import (
    CbtUnavailable, changed_areas,
)
from ansible_collections.replicator.vsphere.plugins.module_utils.vsphere.errors import VsphereError

BLOCK = 64 * 1024  # the lab's CBT granularity


def _blocks(ranges):
    out = set()
    for start, length in ranges:
        out.update(range(start // BLOCK, (start + length + BLOCK - 1) // BLOCK))
    return out


@pytest.fixture
def cbt_vm(lab):
    vm = lab.new_vm('qcda-test', disks_mib=(8,), cbt=True, seed=30)
    yield vm
    lab.control('source', 'config', method='POST', qcda_max_extents=64)
    lab.destroy_vm(vm)


def test_pages_to_the_end_and_matches_guest_writes(lab, cbt_vm):
    key = lab.disks(cbt_vm)[0].key
    capacity = 8 << 20
    snap1 = lab.wait(cbt_vm.CreateSnapshot_Task('s1', '', False, False))
    first_id = [d for d in snap1.config.hardware.device if isinstance(d, vim.vm.device.VirtualDisk)][0].backing.changeId
    lab.control('source', 'config', method='POST', qcda_max_extents=2)
    everything, calls = changed_areas(cbt_vm, snap1, key, capacity, '*')
    assert calls > 1  # two extents per reply forces pagination
    assert everything and all(0 <= s < capacity for s, _l in everything)

    written = lab.labctl('write', 'qcda-test', '--disk', 0, '--offset', 3 * BLOCK + 100, '--length', 5000)
    written2 = lab.labctl('write', 'qcda-test', '--disk', 0, '--offset', capacity - 512, '--length', 512)
    lab.wait(snap1.RemoveSnapshot_Task(False))
    snap2 = lab.wait(cbt_vm.CreateSnapshot_Task('s2', '', False, False))
    areas, calls = changed_areas(cbt_vm, snap2, key, capacity, first_id)
    expected = [(r[0], r[1]) for r in written['ranges'] + written2['ranges']] if 'ranges' in written else None
    assert expected is not None, written
    assert _blocks(areas) == _blocks(expected) == {3, capacity // BLOCK - 1}
    assert calls >= 1
    lab.wait(snap2.RemoveSnapshot_Task(False))


def test_unknown_change_id_is_cbt_unavailable(lab, cbt_vm):
    key = lab.disks(cbt_vm)[0].key
    snap = lab.wait(cbt_vm.CreateSnapshot_Task('s', '', False, False))
    try:
        with pytest.raises(CbtUnavailable) as err:
            changed_areas(cbt_vm, snap, key, 8 << 20, '52 00 00 00 00 00 00 00-00 00 00 00 00 00 00 00/9')
        assert err.value.fault == 'FileFault'
        assert 'Error caused by file' in err.value.msg and 'qcda-test' in err.value.msg
        with pytest.raises(VsphereError) as err:
            changed_areas(cbt_vm, snap, key + 77, 8 << 20, '*')
        assert err.value.fault == 'InvalidArgument'
        assert 'parameter was not correct: deviceKey' in err.value.msg
    finally:
        lab.wait(snap.RemoveSnapshot_Task(False))
