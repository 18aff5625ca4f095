# -*- coding: utf-8 -*-
# Copyright: (c) 2026, replicator.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The lab's Changed Block Tracking: changeIds, stun semantics, QueryChangedDiskAreas (exact, paginated, faults)."""

from __future__ import absolute_import, division, print_function

import re

import pytest

__metaclass__ = type

pyVmomi = pytest.importorskip('pyVmomi')
vim = pyVmomi.vim
vmodl = pyVmomi.vmodl

BLOCK = 64 * 1024
CHANGE_ID = re.compile(r'^52( [0-9a-f]{2}){15}/\d+$')


def set_cbt(lab, vm, enabled):
    lab.wait(vm.ReconfigVM_Task(vim.vm.ConfigSpec(changeTrackingEnabled=enabled)))


def snapshot(lab, vm, name):
    return lab.wait(vm.CreateSnapshot_Task(name=name, description='', memory=False, quiesce=False))


def merged(extents):
    out = []
    for start, length in sorted(extents):
        if out and start <= out[-1][0] + out[-1][1]:
            out[-1][1] = max(out[-1][1], start + length - out[-1][0])
        else:
            out.append([start, length])
    return [tuple(e) for e in out]


def block_rounded(ranges, capacity):
    return merged((off // BLOCK * BLOCK, min(capacity, -(-(off + length) // BLOCK) * BLOCK) - off // BLOCK * BLOCK)
                  for off, length in ranges)


def nonzero_blocks(path, capacity):
    out = []
    with open(path, 'rb') as f:
        for off in range(0, capacity, BLOCK):
            block = f.read(BLOCK)
            if block.count(0) != len(block):
                out.append((off, min(BLOCK, capacity - off)))
    return merged(out)


@pytest.fixture(scope='module')
def app01(lab):
    """app01 with CBT active (enabled, then a power cycle as the stun)."""
    vm = lab.find_vm(lab.connect('source'), 'app01')
    set_cbt(lab, vm, True)
    lab.wait(vm.PowerOffVM_Task())
    lab.wait(vm.PowerOnVM_Task())
    assert all(CHANGE_ID.match(d.backing.changeId) for d in lab.disks(vm))
    return vm


def test_enable_takes_effect_at_stun_and_disable_drops_it(lab):
    vm = lab.find_vm(lab.connect('source'), 'db01')
    assert vm.runtime.powerState == 'poweredOn'
    set_cbt(lab, vm, True)
    assert vm.config.changeTrackingEnabled is True
    assert [d.backing.changeId for d in lab.disks(vm)] == [None, None, None]
    with pytest.raises(vim.fault.FileFault):
        vm.QueryChangedDiskAreas(snapshot=None, deviceKey=2000, startOffset=0, changeId='*')

    snap = snapshot(lab, vm, 'stun')  # the stun
    current = [d.backing.changeId for d in lab.disks(vm)]
    frozen = [d.backing.changeId for d in lab.disks(snap)]
    assert all(CHANGE_ID.match(c) for c in current)
    assert current == frozen
    assert len({c.split('/')[0] for c in current}) == 3  # one epoch per disk
    lab.wait(snap.RemoveSnapshot_Task(removeChildren=False))
    epochs = [c.split('/')[0] for c in current]

    set_cbt(lab, vm, False)
    assert vm.config.changeTrackingEnabled is False
    assert [d.backing.changeId for d in lab.disks(vm)] == [None, None, None]
    with pytest.raises(vim.fault.FileFault):
        vm.QueryChangedDiskAreas(snapshot=None, deviceKey=2000, startOffset=0, changeId='*')

    set_cbt(lab, vm, True)
    snap = snapshot(lab, vm, 'stun2')
    again = [d.backing.changeId.split('/')[0] for d in lab.disks(snap)]
    assert not set(again) & set(epochs)  # a new epoch after disable/enable
    lab.wait(snap.RemoveSnapshot_Task(removeChildren=False))
    set_cbt(lab, vm, False)


def test_star_is_the_nonzero_blocks(lab, app01):
    snap = snapshot(lab, app01, 'full')
    try:
        info = lab.control('source', 'vm', name='app01')
        frozen = {d['key']: d for d in info['snapshots'][0]['disks']}
        for d in lab.disks(snap):
            areas, _calls = lab.changed_areas(app01, snap, d.key, '*', d.capacityInBytes)
            expected = nonzero_blocks(frozen[d.key]['data'], d.capacityInBytes)
            assert expected and merged(areas) == expected
            # startOffset inside a block: reported areas start there
            info = app01.QueryChangedDiskAreas(snapshot=snap, deviceKey=d.key, startOffset=expected[0][0] + 100, changeId='*')
            assert info.startOffset == expected[0][0] + 100 and info.changedArea[0].start == expected[0][0] + 100
    finally:
        lab.wait(snap.RemoveSnapshot_Task(removeChildren=False))


def test_incremental_is_exactly_what_the_guest_wrote(lab, app01):
    snap1 = snapshot(lab, app01, 'cycle1')
    cids = {d.key: d.backing.changeId for d in lab.disks(snap1)}
    lab.wait(snap1.RemoveSnapshot_Task(removeChildren=False))

    w1 = lab.labctl('write', 'app01', '--disk', 1, '--percent', 3, '--seed', 7)
    w0 = lab.labctl('write', 'app01', '--disk', 0, '--offset', 100000, '--length', 5000, '--seed', 8)
    snap2 = snapshot(lab, app01, 'cycle2')
    try:
        for d in lab.disks(snap2):
            w = w0 if d.key == 2000 else w1
            areas, _calls = lab.changed_areas(app01, snap2, d.key, cids[d.key], d.capacityInBytes)
            assert merged(areas) == block_rounded(w['ranges'], d.capacityInBytes)
            assert d.backing.changeId.split('/')[0] == cids[d.key].split('/')[0]
        assert merged(lab.changed_areas(app01, snap2, 2000, cids[2000], 64 << 20)[0]) == [(65536, 65536)]
        live = lab.labctl('checksum', 'app01')['disks']
        frozen = lab.labctl('checksum', 'app01', '--snapshot', 'cycle2')['disks']
        assert [d['sha256'] for d in live] == [d['sha256'] for d in frozen]
    finally:
        lab.wait(snap2.RemoveSnapshot_Task(removeChildren=False))


def test_pagination(lab, app01):
    snap = snapshot(lab, app01, 'pages')
    try:
        d = lab.disks(snap)[1]
        lab.control('source', 'config', 'POST', qcda_max_extents=100000)
        whole, calls = lab.changed_areas(app01, snap, d.key, '*', d.capacityInBytes)
        assert calls == 1 and len(whole) > 5
        lab.control('source', 'config', 'POST', qcda_max_extents=2)
        first = app01.QueryChangedDiskAreas(snapshot=snap, deviceKey=d.key, startOffset=0, changeId='*')
        assert len(first.changedArea) == 2
        assert first.length == first.changedArea[-1].start + first.changedArea[-1].length < d.capacityInBytes
        paged, calls = lab.changed_areas(app01, snap, d.key, '*', d.capacityInBytes)
        assert paged == whole and calls >= len(whole) // 2
    finally:
        lab.control('source', 'config', 'POST', qcda_max_extents=64)
        lab.wait(snap.RemoveSnapshot_Task(removeChildren=False))


def test_faults_and_reset(lab, app01):
    snap = snapshot(lab, app01, 'faults')
    try:
        d = lab.disks(snap)[0]
        cid = d.backing.changeId
        epoch = cid.split('/')[0]
        assert app01.QueryChangedDiskAreas(snapshot=snap, deviceKey=d.key, startOffset=0, changeId=cid).changedArea == []
        with pytest.raises(vim.fault.FileFault):
            app01.QueryChangedDiskAreas(snapshot=snap, deviceKey=d.key, startOffset=0, changeId=epoch + '/999')
        with pytest.raises(vmodl.fault.InvalidArgument):
            app01.QueryChangedDiskAreas(snapshot=snap, deviceKey=2999, startOffset=0, changeId='*')
        with pytest.raises(vmodl.fault.InvalidArgument):
            app01.QueryChangedDiskAreas(snapshot=snap, deviceKey=d.key, startOffset=d.capacityInBytes, changeId='*')

        lab.labctl('reset-cbt', 'app01')
        with pytest.raises(vim.fault.FileFault):
            app01.QueryChangedDiskAreas(snapshot=snap, deviceKey=d.key, startOffset=0, changeId=cid)
        assert app01.QueryChangedDiskAreas(snapshot=snap, deviceKey=d.key, startOffset=0, changeId='*').changedArea
    finally:
        lab.wait(snap.RemoveSnapshot_Task(removeChildren=False))
    snap = snapshot(lab, app01, 'after-reset')
    try:
        assert lab.disks(snap)[0].backing.changeId.split('/')[0] != epoch
    finally:
        lab.wait(snap.RemoveSnapshot_Task(removeChildren=False))
