# -*- coding: utf-8 -*-
# Copyright: (c) 2026, replicator.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""cbt_enable through ansible against the lab: stun semantics, idempotency, reset, untrackable disks, bad input."""

from __future__ import absolute_import, division, print_function

import re

import pytest

__metaclass__ = type

pyVmomi = pytest.importorskip('pyVmomi')
vim = pyVmomi.vim

CHANGE_ID = re.compile(r'^52( [0-9a-f]{2}){15}/\d+$')
VM = 'mod-cbt-vm'


@pytest.fixture(scope='module')
def vm(lab):
    vm = lab.new_vm(VM, disks_mib=(4, 4), power_on=True)
    yield vm
    lab.destroy_vm(vm)


def change_ids(lab, vm):
    return [d.backing.changeId for d in sorted(lab.disks(vm), key=lambda d: d.key)]


def test_present_on_a_powered_on_vm_stuns_once(lab, ansible_module, vm):
    check = ansible_module('cbt_enable', check=True, diff=True, name=VM)
    assert check['changed'] is True and check['steps'] == ['enable', 'stun'] and check['tasks'] == []
    assert check['diff'] == {'before': {'enabled': False, 'active': False}, 'after': {'enabled': True, 'active': True}}
    assert not vm.config.changeTrackingEnabled and vm.snapshot is None

    done = ansible_module('cbt_enable', diff=True, name=VM)
    assert done['changed'] is True and done['steps'] == ['enable', 'stun']
    assert [t['step'] for t in done['tasks']] == ['enable', 'stun', 'stun'] and done['task'] == done['tasks'][-1]['task']
    assert done['cbt'] == {'enabled': True, 'active': True, 'pending': False, 'powered_on': True}
    assert done['vm']['moid'] == vm._moId
    ids = change_ids(lab, vm)
    assert all(CHANGE_ID.match(c) for c in ids)
    assert [d['change_id'] for d in done['disks']] == ids and all(d['tracked'] for d in done['disks'])
    assert vm.config.changeTrackingEnabled is True
    assert vm.snapshot is None  # the stun snapshot is gone
    print('SOAP cbt_enable present (enable + stun): %d %s' % (done['soap_total'], done['soap']))

    again = ansible_module('cbt_enable', diff=True, name=VM)
    assert again['changed'] is False and again['steps'] == [] and again['task'] is None
    assert again['diff']['before'] == again['diff']['after']
    assert change_ids(lab, vm) == ids
    print('SOAP cbt_enable present (already active): %d %s' % (again['soap_total'], again['soap']))


def test_absent_then_present_without_stun_stays_pending(lab, ansible_module, vm):
    off = ansible_module('cbt_enable', name=VM, state='absent')
    assert off['changed'] is True and off['steps'] == ['disable']
    assert vm.config.changeTrackingEnabled is False and change_ids(lab, vm) == [None, None]
    assert ansible_module('cbt_enable', name=VM, state='absent')['changed'] is False

    pending = ansible_module('cbt_enable', name=VM, stun=False)
    assert pending['changed'] is True and pending['steps'] == ['enable']
    assert pending['cbt']['pending'] is True and pending['cbt']['active'] is False
    assert 'waits for a stun' in pending['_output']
    assert vm.config.changeTrackingEnabled is True and change_ids(lab, vm) == [None, None]
    # still pending: with stun false there is nothing to do, with stun (default) the stun runs
    assert ansible_module('cbt_enable', name=VM, stun=False)['changed'] is False
    stunned = ansible_module('cbt_enable', name=VM)
    assert stunned['changed'] is True and stunned['steps'] == ['stun'] and stunned['cbt']['active'] is True
    assert all(CHANGE_ID.match(c) for c in change_ids(lab, vm))


def test_reset_starts_new_epochs(lab, ansible_module, vm):
    before = change_ids(lab, vm)
    check = ansible_module('cbt_enable', check=True, name=VM, state='reset')
    assert check['changed'] is True and check['steps'] == ['disable', 'stun', 'enable', 'stun']
    assert change_ids(lab, vm) == before
    reset = ansible_module('cbt_enable', name=VM, state='reset')
    assert reset['changed'] is True and reset['cbt']['active'] is True
    after = change_ids(lab, vm)
    assert all(CHANGE_ID.match(c) for c in after)
    assert [c.split('/')[0] for c in after] != [c.split('/')[0] for c in before]  # new epoch on every disk
    assert all(a.split('/')[0] != b.split('/')[0] for a, b in zip(after, before))
    assert vm.snapshot is None
    print('SOAP cbt_enable reset: %d %s' % (reset['soap_total'], reset['soap']))


def test_stun_keeps_existing_user_snapshots(lab, ansible_module, vm):
    lab.wait(vm.CreateSnapshot_Task(name='user-snap', description='', memory=False, quiesce=False))
    try:
        assert ansible_module('cbt_enable', name=VM, state='reset')['changed'] is True
        assert [s.name for s in vm.snapshot.rootSnapshotList] == ['user-snap']
        assert not vm.snapshot.rootSnapshotList[0].childSnapshotList
    finally:
        lab.wait(vm.snapshot.rootSnapshotList[0].snapshot.RemoveSnapshot_Task(removeChildren=False))


def test_powered_off_vm_needs_no_stun(lab, ansible_module):
    vm = lab.new_vm('mod-cbt-off', disks_mib=(4,))
    try:
        done = ansible_module('cbt_enable', name='mod-cbt-off')
        assert done['changed'] is True and done['steps'] == ['enable']
        assert done['cbt']['active'] is True and done['cbt']['powered_on'] is False
        assert ansible_module('cbt_enable', name='mod-cbt-off')['changed'] is False
    finally:
        lab.destroy_vm(vm)


def test_untrackable_disk_fails_or_is_skipped(lab, ansible_module):
    vm = lab.new_vm('mod-cbt-indep', disks_mib=(4, 4), power_on=True)
    try:
        disk = sorted(lab.disks(vm), key=lambda d: d.key)[1]
        disk.backing.diskMode = 'independent_persistent'
        edit = vim.vm.device.VirtualDeviceSpec(operation='edit', device=disk)
        lab.wait(vm.ReconfigVM_Task(vim.vm.ConfigSpec(deviceChange=[edit])))

        refused = ansible_module('cbt_enable', name='mod-cbt-indep')
        assert refused['failed'] is True and refused['fault'] == 'Untrackable'
        assert 'key %d' % disk.key in refused['msg'] and 'untrackable: skip' in refused['hint']
        assert not vm.config.changeTrackingEnabled  # refused before any change

        skipped = ansible_module('cbt_enable', name='mod-cbt-indep', untrackable='skip')
        assert skipped['changed'] is True and skipped['cbt']['active'] is True
        assert [d['skipped'] for d in skipped['disks']] == [False, True]
        assert CHANGE_ID.match(skipped['disks'][0]['change_id'])
        assert ansible_module('cbt_enable', name='mod-cbt-indep', untrackable='skip')['changed'] is False
        # disabling never refuses
        assert ansible_module('cbt_enable', name='mod-cbt-indep', state='absent')['changed'] is True
    finally:
        lab.destroy_vm(vm)


def test_bad_input(ansible_module):
    missing = ansible_module('cbt_enable', name='no-such-vm')
    assert missing['failed'] is True and missing['fault'] == 'NotFound'
    conn = ansible_module.connection()
    bad = ansible_module('cbt_enable', connection=dict(conn, password='nope-nope'), name=VM)
    assert bad['failed'] is True and bad['fault'] == 'InvalidLogin' and 'nope-nope' not in bad['msg']
    down = ansible_module('cbt_enable', connection=dict(conn, port=ansible_module.free_port(), timeout=5), name=VM)
    assert down['failed'] is True and 'Cannot reach' in down['msg']
    choice = ansible_module('cbt_enable', name=VM, untrackable='ignore')
    assert choice['failed'] is True and 'untrackable' in choice['msg']
