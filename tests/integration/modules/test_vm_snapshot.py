# -*- coding: utf-8 -*-
# Copyright: (c) 2026, replicator.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""vm_snapshot through ansible against the lab: check mode, apply, re-apply, the whole tree, bad input."""

from __future__ import absolute_import, division, print_function

import re

import pytest

__metaclass__ = type

pyVmomi = pytest.importorskip('pyVmomi')
vim = pyVmomi.vim

CHANGE_ID = re.compile(r'^52( [0-9a-f]{2}){15}/\d+$')
VM = 'mod-snap-vm'


@pytest.fixture(scope='module')
def vm(lab):
    vm = lab.new_vm(VM, disks_mib=(8, 4), cbt=True, seed=30, power_on=True)
    yield vm
    lab.destroy_vm(vm)


def tree_names(vm):
    out = []

    def visit(nodes, parent):
        for n in nodes or []:
            out.append((parent, n.name, n.snapshot._moId))
            visit(n.childSnapshotList, n.name)
    visit(vm.snapshot.rootSnapshotList if vm.snapshot else [], None)
    return out


def test_present_check_apply_reapply(lab, ansible_module, vm):
    check = ansible_module('vm_snapshot', check=True, diff=True, name=VM, snapshot_name='base', description='first')
    assert check['changed'] is True and check['snapshot']['moid'] is None and check['task'] is None
    assert check['diff'] == {'before': {'snapshot': None, 'current': None}, 'after': {'snapshot': 'base', 'current': 'base'}}
    assert vm.snapshot is None

    made = ansible_module('vm_snapshot', name=VM, snapshot_name='base', description='first')
    assert made['changed'] is True, made
    snap = made['snapshot']
    assert made['vm'] == {'name': VM, 'moid': vm._moId, 'instance_uuid': vm.config.instanceUuid}
    assert made['task'].startswith('task-')
    assert tree_names(vm) == [(None, 'base', snap['moid'])]
    assert snap['description'] == 'first' and snap['current'] is True and snap['parent'] is None
    # per-disk facts are what the snapshot froze (compared with pyvmomi reading the snapshot itself)
    frozen = sorted((d for d in vm.snapshot.rootSnapshotList[0].snapshot.config.hardware.device
                     if isinstance(d, vim.vm.device.VirtualDisk)), key=lambda d: d.key)
    assert [d['key'] for d in snap['disks']] == [d.key for d in frozen]
    assert [d['capacity_bytes'] for d in snap['disks']] == [8 << 20, 4 << 20]
    for fact, dev in zip(snap['disks'], frozen):
        assert fact['uuid'] == dev.backing.uuid and fact['file'] == dev.backing.fileName
        assert fact['chain'] == [dev.backing.fileName]
        assert CHANGE_ID.match(fact['change_id']) and fact['change_id'] == dev.backing.changeId
    live = [d.backing for d in vm.config.hardware.device if isinstance(d, vim.vm.device.VirtualDisk)]
    assert all(b.parent is not None and b.parent.fileName == f['file'] for b, f in zip(live, snap['disks']))

    again = ansible_module('vm_snapshot', diff=True, name=VM, snapshot_name='base')
    assert again['changed'] is False and again['task'] is None
    assert again['snapshot']['moid'] == snap['moid'] and again['snapshot']['disks'] == snap['disks']
    assert again['diff']['before'] == again['diff']['after']
    print('SOAP vm_snapshot present (create): %d %s' % (made['soap_total'], made['soap']))
    print('SOAP vm_snapshot present (exists): %d %s' % (again['soap_total'], again['soap']))


def test_chain_file_of_a_nested_snapshot(ansible_module, vm):
    child = ansible_module('vm_snapshot', name=VM, snapshot_name='nested', memory=True, description='with memory')
    assert child['changed'] is True and child['snapshot']['parent'] == 'base'
    assert child['snapshot']['power_state'] == 'poweredOn' and child['snapshot']['description'] == 'with memory'
    disk = child['snapshot']['disks'][0]
    assert len(disk['chain']) == 2 and disk['chain'][0] == disk['file'] and disk['chain'][0].endswith('-000001.vmdk')
    gone = ansible_module('vm_snapshot', name=VM, snapshot_name='nested', state='absent')
    assert gone['changed'] is True


def test_siblings_same_name_ambiguity_parent_and_revert(lab, ansible_module, vm):
    """base -> a -> dup, base -> b -> dup: the walk finds both, parent_name picks one."""
    by_name = dict((n, m) for _p, n, m in tree_names(vm))
    base = vim.vm.Snapshot(by_name['base'], vm._stub)
    for branch in ('a', 'b'):
        lab.wait(base.RevertToSnapshot_Task())
        lab.wait(vm.CreateSnapshot_Task(name=branch, description='', memory=False, quiesce=False))
        lab.wait(vm.CreateSnapshot_Task(name='dup', description='', memory=False, quiesce=False))
    dups = dict((p, m) for p, n, m in tree_names(vm) if n == 'dup')
    assert sorted(dups) == ['a', 'b']

    amb = ansible_module('vm_snapshot', name=VM, snapshot_name='dup')
    assert amb.get('failed') is True and amb['fault'] == 'Ambiguous'
    assert dups['a'] in amb['msg'] and dups['b'] in amb['msg'] and 'parent_name' in amb['hint']
    assert ansible_module('vm_snapshot', name=VM, snapshot_name='dup', state='absent')['fault'] == 'Ambiguous'

    found = ansible_module('vm_snapshot', name=VM, snapshot_name='dup', parent_name='a')
    assert found['changed'] is False and found['snapshot']['moid'] == dups['a']

    # present with a parent that is not the current snapshot: refused, nothing created
    wrong = ansible_module('vm_snapshot', name=VM, snapshot_name='new', parent_name='a')
    assert wrong['failed'] is True and wrong['fault'] == 'InvalidParent' and "current snapshot 'dup'" in wrong['msg']

    check = ansible_module('vm_snapshot', check=True, name=VM, snapshot_name='dup', parent_name='a', state='reverted')
    assert check['changed'] is True and check['task'] is None
    assert vm.snapshot.currentSnapshot._moId == dups['b']
    reverted = ansible_module('vm_snapshot', name=VM, snapshot_name='dup', parent_name='a', state='reverted')
    assert reverted['changed'] is True and reverted['task'].startswith('task-')
    assert vm.snapshot.currentSnapshot._moId == dups['a'] and reverted['snapshot']['current'] is True
    print('SOAP vm_snapshot reverted: %d %s' % (reverted['soap_total'], reverted['soap']))

    removed = ansible_module('vm_snapshot', name=VM, snapshot_name='dup', parent_name='b', state='absent')
    assert removed['changed'] is True and removed['snapshot']['moid'] == dups['b']
    assert [m for _p, n, m in tree_names(vm) if n == 'dup'] == [dups['a']]
    print('SOAP vm_snapshot absent: %d %s' % (removed['soap_total'], removed['soap']))
    # no longer ambiguous: the remaining one is found without a parent
    assert ansible_module('vm_snapshot', name=VM, snapshot_name='dup')['snapshot']['moid'] == dups['a']


def test_absent_check_apply_reapply(ansible_module, vm):
    before = tree_names(vm)
    assert [(p, n) for p, n, _m in before] == [(None, 'base'), ('base', 'a'), ('a', 'dup'), ('base', 'b')]
    check = ansible_module('vm_snapshot', check=True, diff=True, moid=vm._moId, snapshot_name='a', state='absent')
    assert check['changed'] is True and check['task'] is None
    assert check['diff'] == {'before': {'snapshot': 'a', 'current': 'dup'}, 'after': {'snapshot': None, 'current': 'dup'}}
    assert tree_names(vm) == before
    done = ansible_module('vm_snapshot', moid=vm._moId, snapshot_name='a', state='absent')
    assert done['changed'] is True and done['snapshot']['name'] == 'a'
    # its child 'dup' is kept (removeChildren false), now under base
    assert [(p, n) for p, n, _m in tree_names(vm)] == [(None, 'base'), ('base', 'dup'), ('base', 'b')]
    again = ansible_module('vm_snapshot', moid=vm._moId, snapshot_name='a', state='absent')
    assert again['changed'] is False and again['snapshot'] is None


def test_revert_to_missing_snapshot_fails_and_lists_names(ansible_module, vm):
    res = ansible_module('vm_snapshot', name=VM, snapshot_name='nope', state='reverted')
    assert res['failed'] is True and res['fault'] == 'NotFound' and 'base' in res['msg']


def test_unknown_vm(ansible_module):
    res = ansible_module('vm_snapshot', name='no-such-vm', snapshot_name='x')
    assert res['failed'] is True and res['fault'] == 'NotFound' and "'no-such-vm'" in res['msg'] and res['hint']
    res = ansible_module('vm_snapshot', moid='vm-999999', snapshot_name='x')
    assert res['failed'] is True and res['fault'] == 'ManagedObjectNotFound'


def test_bad_credentials_and_unreachable_host(lab, ansible_module):
    conn = ansible_module.connection()
    bad = ansible_module('vm_snapshot', connection=dict(conn, password='wrong-pass-123'), name=VM, snapshot_name='x')
    assert bad['failed'] is True and bad['fault'] == 'InvalidLogin' and bad['hint']
    assert 'wrong-pass-123' not in bad['msg'] and conn['password'] not in bad['msg']
    down = ansible_module('vm_snapshot', connection=dict(conn, port=ansible_module.free_port(), timeout=5), name=VM,
                          snapshot_name='x')
    assert down['failed'] is True and 'Cannot reach' in down['msg'] and down['hint']


def test_missing_vm_identity_is_an_argument_error(ansible_module):
    res = ansible_module('vm_snapshot', snapshot_name='x')
    assert res['failed'] is True and 'name, uuid, moid' in res['msg']


def test_timeout_is_reported_as_still_running(ansible_module, vm):
    """task_timeout 0: the module does not wait and says so honestly; the snapshot appears once the task ends."""
    res = ansible_module('vm_snapshot', name=VM, snapshot_name='late', task_timeout=0)
    assert res['failed'] is True and res['still_running'] is True and res['changed'] is True
    assert res['fault'] == 'Timeout' and res['task'].startswith('task-') and res['task'] in res['msg']
    assert 'still running' in res['msg']
    # the lab ends its tasks at once: the next run finds the snapshot and changes nothing
    again = ansible_module('vm_snapshot', name=VM, snapshot_name='late')
    assert again['changed'] is False and again['snapshot']['name'] == 'late'
    assert ansible_module('vm_snapshot', name=VM, snapshot_name='x', task_timeout=-1)['failed'] is True
