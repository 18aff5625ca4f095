# -*- coding: utf-8 -*-
# Copyright: (c) 2026, replicator.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The lab's snapshots hold real data: frozen while the guest writes, revert, removal anywhere, consolidation."""

from __future__ import absolute_import, division, print_function

import os
import re

import pytest

__metaclass__ = type

pyVmomi = pytest.importorskip('pyVmomi')
vim = pyVmomi.vim


def snapshot(lab, vm, name):
    return lab.wait(vm.CreateSnapshot_Task(name=name, description='', memory=False, quiesce=False))


def sums(lab, vm_name, snapshot_name=None, disk=None):
    args = ['checksum', vm_name]
    if snapshot_name:
        args += ['--snapshot', snapshot_name]
    if disk is not None:
        args += ['--disk', disk]
    return [d['sha256'] for d in lab.labctl(*args)['disks']]


def vm_dir_files(lab, vm):
    ds = lab.state['sites']['source']['datastores']['src-ds1']
    return sorted(os.listdir(os.path.join(ds, vm.name)))


def assert_layout_matches_files(lab, vm):
    ds = lab.state['sites']['source']['datastores']['src-ds1']
    for f in vm.layoutEx.file:
        assert os.path.exists(os.path.join(ds, re.sub(r'^\[src-ds1\] ', '', f.name))), f.name


def test_snapshot_data_is_frozen_and_delta_named_like_esxi(lab):
    vm = lab.find_vm(lab.connect('source'), 'web01')
    before = sums(lab, 'web01')
    snap = snapshot(lab, vm, 's1')
    try:
        lab.labctl('write', 'web01', '--percent', 5, '--seed', 21)
        assert sums(lab, 'web01', 's1') == before
        assert sums(lab, 'web01') != before
        cur, frozen = lab.disks(vm)[0], lab.disks(snap)[0]
        assert cur.backing.fileName == '[src-ds1] web01/web01-000001.vmdk'
        assert cur.backing.parent.fileName == '[src-ds1] web01/web01.vmdk'
        assert frozen.backing.fileName == '[src-ds1] web01/web01.vmdk' and frozen.backing.parent is None
        assert cur.backing.uuid == frozen.backing.uuid
        ds = lab.state['sites']['source']['datastores']['src-ds1']
        with open(os.path.join(ds, 'web01', 'web01-000001.vmdk')) as f:
            text = f.read()
        assert 'createType="vmfsSparse"' in text and 'parentFileNameHint="web01.vmdk"' in text
        assert [f.diskFile for f in vm.layout.disk] == [['[src-ds1] web01/web01.vmdk', '[src-ds1] web01/web01-000001.vmdk']]
        assert_layout_matches_files(lab, vm)
    finally:
        lab.wait(snap.RemoveSnapshot_Task(removeChildren=False))
    assert vm.snapshot is None
    assert lab.disks(vm)[0].backing.fileName == '[src-ds1] web01/web01.vmdk'
    assert vm_dir_files(lab, vm) == ['vmware.log', 'web01-flat.vmdk', 'web01.nvram', 'web01.vmdk', 'web01.vmx']


def test_revert_restores_snapshot_data(lab):
    vm = lab.find_vm(lab.connect('source'), 'web01')
    before = sums(lab, 'web01')
    snap = snapshot(lab, vm, 'r1')
    lab.labctl('write', 'web01', '--percent', 4, '--seed', 22)
    assert sums(lab, 'web01') != before
    lab.wait(snap.RevertToSnapshot_Task())
    assert sums(lab, 'web01') == before
    lab.labctl('write', 'web01', '--percent', 2, '--seed', 23)
    after = sums(lab, 'web01')
    lab.wait(vm.RevertToCurrentSnapshot_Task())
    assert sums(lab, 'web01') == before
    lab.labctl('write', 'web01', '--percent', 2, '--seed', 23)
    assert sums(lab, 'web01') == after
    lab.wait(vm.RemoveAllSnapshots_Task())
    assert sums(lab, 'web01') == after
    assert vm.snapshot is None
    assert vm_dir_files(lab, vm) == ['vmware.log', 'web01-flat.vmdk', 'web01.nvram', 'web01.vmdk', 'web01.vmx']


def test_removing_any_snapshot_keeps_all_data(lab):
    vm = lab.find_vm(lab.connect('source'), 'db01')
    states, snaps = [], {}
    for i, name in enumerate(('A', 'B', 'C')):
        states.append(sums(lab, 'db01'))
        snaps[name] = snapshot(lab, vm, name)
        lab.labctl('write', 'db01', '--disk', i % 3, '--percent', 3, '--seed', 30 + i)
    live = sums(lab, 'db01')
    assert len({tuple(s) for s in states + [live]}) == 4

    lab.wait(snaps['B'].RemoveSnapshot_Task(removeChildren=False))  # middle, has a child
    assert sums(lab, 'db01', 'A') == states[0]
    assert sums(lab, 'db01', 'C') == states[2]
    assert sums(lab, 'db01') == live
    assert_layout_matches_files(lab, vm)

    lab.wait(snaps['A'].RemoveSnapshot_Task(removeChildren=False))  # root, has a child
    assert sums(lab, 'db01', 'C') == states[2]
    assert sums(lab, 'db01') == live
    assert [s.name for s in vm.snapshot.rootSnapshotList] == ['C']
    assert lab.disks(snaps['C'])[0].backing.fileName == '[src-ds1] db01/db01.vmdk'
    assert_layout_matches_files(lab, vm)

    d = snapshot(lab, vm, 'D')
    e = snapshot(lab, vm, 'E')
    lab.wait(d.RemoveSnapshot_Task(removeChildren=True))  # subtree D/E
    assert [s.name for s in vm.snapshot.rootSnapshotList] == ['C'] and not vm.snapshot.rootSnapshotList[0].childSnapshotList
    assert e not in [s.snapshot for s in vm.snapshot.rootSnapshotList]
    lab.wait(vm.RemoveAllSnapshots_Task())
    assert sums(lab, 'db01') == live
    assert not [f for f in vm_dir_files(lab, vm) if re.search(r'-0000\d\d|\.vmsn$', f)]
    assert_layout_matches_files(lab, vm)


def test_deferred_consolidation(lab):
    vm = lab.find_vm(lab.connect('source'), 'web02')
    lab.labctl('defer-consolidate', 'web02')
    try:
        snap = snapshot(lab, vm, 'd1')
        lab.labctl('write', 'web02', '--percent', 3, '--seed', 41)
        live = sums(lab, 'web02')
        assert vm.runtime.consolidationNeeded is False
        lab.wait(snap.RemoveSnapshot_Task(removeChildren=False))
        assert vm.snapshot is None
        assert vm.runtime.consolidationNeeded is True
        assert lab.disks(vm)[0].backing.fileName == '[src-ds1] web02/web02-000001.vmdk'
        assert sums(lab, 'web02') == live
        lab.wait(vm.ConsolidateVMDisks_Task())
        assert vm.runtime.consolidationNeeded is False
        assert lab.disks(vm)[0].backing.fileName == '[src-ds1] web02/web02.vmdk'
        assert sums(lab, 'web02') == live
        assert vm_dir_files(lab, vm) == ['vmware.log', 'web02-flat.vmdk', 'web02.nvram', 'web02.vmdk', 'web02.vmx']
    finally:
        lab.labctl('defer-consolidate', 'web02', '--off')
