# -*- coding: utf-8 -*-
# Copyright: (c) 2026, replicator.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""CBT state, refusal of untrackable disks and step planning, on properties as a PropertyCollector returns them."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import pytest
from pyVmomi import vim

from ansible_collections.replicator.vsphere.plugins.module_utils.vsphere.cbt import (
    Untrackable, cbt_state, check_trackable, plan_steps, predicted_state, stun_name,
)


def disk(key, change_id=None, mode='persistent'):
    backing = vim.vm.device.VirtualDisk.FlatVer2BackingInfo(fileName='[ds] vm/d%d.vmdk' % key, diskMode=mode,
                                                            changeId=change_id, uuid='6000C29-%d' % key)
    return vim.vm.device.VirtualDisk(key=key, backing=backing, capacityInBytes=1 << 20, controllerKey=1000,
                                     unitNumber=key - 2000,
                                     deviceInfo=vim.Description(label='Hard disk %d' % (key - 1999), summary=''))


def props(enabled, power='poweredOn', disks=()):
    return {'name': 'vm1', 'config.changeTrackingEnabled': enabled, 'runtime.powerState': power,
            'config.hardware.device': [vim.vm.device.VirtualLsiLogicController(key=1000)] + list(disks)}


def test_state_active_pending_off():
    on = cbt_state(props(True, disks=[disk(2000, '52 aa/1'), disk(2001, '52 bb/1')]))
    assert on['enabled'] and on['active'] and not on['pending']
    assert [d['tracked'] for d in on['disks']] == [True, True]
    pending = cbt_state(props(True, disks=[disk(2000, '52 aa/1'), disk(2001)]))
    assert pending['enabled'] and not pending['active'] and pending['pending']
    off = cbt_state(props(None, disks=[disk(2000)]))
    assert not off['enabled'] and not off['active'] and not off['pending']
    powered_off = cbt_state(props(True, power='poweredOff', disks=[disk(2000)]))
    assert powered_off['active'] and not powered_off['pending'] and not powered_off['powered_on']
    assert cbt_state(props(True, power='suspended', disks=[disk(2000)]))['pending']


def test_untrackable_disks_do_not_block_activity_and_are_refused_or_skipped():
    devices = [disk(2000, '52 aa/1'), disk(2001, mode='independent_persistent')]
    state = cbt_state(props(True, disks=devices))
    assert state['active']
    assert state['disks'][1]['untrackable'] and not state['disks'][1]['skipped']
    with pytest.raises(Untrackable) as err:
        check_trackable(state, 'vm1', 'fail')
    assert 'Hard disk 2 (key 2001)' in err.value.msg and 'independent' in err.value.msg
    assert 'untrackable: skip' in err.value.hint
    skipped = cbt_state(props(True, disks=devices), skip_untrackable=True)
    assert [d['skipped'] for d in skipped['disks']] == [False, True]
    check_trackable(skipped, 'vm1', 'skip')  # no error


@pytest.mark.parametrize('enabled,change_id,power,desired,stun,steps', [
    (False, None, 'poweredOn', 'present', True, ['enable', 'stun']),
    (False, None, 'poweredOn', 'present', False, ['enable']),
    (True, None, 'poweredOn', 'present', True, ['stun']),
    (True, None, 'poweredOn', 'present', False, []),
    (True, '52 aa/1', 'poweredOn', 'present', True, []),
    (False, None, 'poweredOff', 'present', True, ['enable']),
    (True, None, 'poweredOff', 'present', True, []),
    (True, '52 aa/1', 'poweredOn', 'absent', True, ['disable']),
    (False, None, 'poweredOn', 'absent', True, []),
    (True, '52 aa/1', 'poweredOn', 'reset', True, ['disable', 'stun', 'enable', 'stun']),
    (True, '52 aa/1', 'poweredOn', 'reset', False, ['disable', 'enable']),
    (False, None, 'poweredOff', 'reset', True, ['disable', 'enable']),
])
def test_plan(enabled, change_id, power, desired, stun, steps):
    state = cbt_state(props(enabled, power=power, disks=[disk(2000, change_id)]))
    assert plan_steps(state, desired, stun=stun) == steps


def test_predicted_state():
    pending = cbt_state(props(False, disks=[disk(2000)]))
    assert predicted_state(pending, 'present', ['enable', 'stun']) == {'enabled': True, 'active': True}
    assert predicted_state(pending, 'present', ['enable']) == {'enabled': True, 'active': False}
    active = cbt_state(props(True, disks=[disk(2000, '52 aa/1')]))
    assert predicted_state(active, 'reset', ['disable', 'enable']) == {'enabled': True, 'active': False}
    assert predicted_state(active, 'absent', ['disable']) == {'enabled': False, 'active': False}
    off = cbt_state(props(False, power='poweredOff', disks=[disk(2000)]))
    assert predicted_state(off, 'present', ['enable']) == {'enabled': True, 'active': True}


def test_stun_name_carries_the_prefix():
    assert stun_name('replicator-', now=1700000000.5) == 'replicator-cbt-stun-1700000000'


def test_failed_stun_removal_names_the_leftover_snapshot(monkeypatch):
    from ansible_collections.replicator.vsphere.plugins.module_utils.vsphere import cbt as vsphere_cbt
    from ansible_collections.replicator.vsphere.plugins.module_utils.vsphere.errors import TaskFailed
    calls = []

    def create(client, vm, vm_name, name, description, **kw):
        calls.append(('create', name))
        return vim.vm.Snapshot('snapshot-9'), 'task-1'

    def remove(client, ref, name, vm_name, timeout):
        calls.append(('remove', ref._moId))
        raise TaskFailed('Removing failed', fault='TaskInProgress', hint='Retry later.', task='task-2')

    monkeypatch.setattr(vsphere_cbt, 'create_snapshot', create)
    monkeypatch.setattr(vsphere_cbt, 'remove_snapshot', remove)
    with pytest.raises(TaskFailed) as err:
        vsphere_cbt.stun_cycle(None, None, 'vm1', 'replicator-', 60)
    assert calls[0][0] == 'create' and calls[0][1].startswith('replicator-cbt-stun-')
    assert calls[1] == ('remove', 'snapshot-9')
    assert err.value.hint.startswith('Retry later. ') and calls[0][1] in err.value.hint
    assert 'snapshot_consolidate' in err.value.hint and err.value.task == 'task-2'
