# -*- coding: utf-8 -*-
# Copyright: (c) 2026, replicator.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""vm_power through ansible against the lab: check mode, apply, re-apply unchanged, a clean guest shutdown (the lab's
guest powers off asynchronously, like a real one), a hung guest (still running / forced), Tools not running."""

from __future__ import absolute_import, division, print_function

import pytest

__metaclass__ = type

pyVmomi = pytest.importorskip('pyVmomi')

VM = 'mod-power-vm'


@pytest.fixture
def vm(lab):
    vm = lab.new_vm(VM, disks_mib=(4,), power_on=True)
    yield vm
    lab.destroy_vm(vm)


def power(vm):
    return str(vm.runtime.powerState)


def test_check_apply_and_reapply(lab, ansible_module, vm):
    check = ansible_module('vm_power', check=True, diff=True, name=VM, state='powered_off')
    assert check['changed'] is True and check['steps'] == ['power_off'] and check['task'] is None
    assert check['diff'] == {'before': {'power_state': 'poweredOn'}, 'after': {'power_state': 'poweredOff'}}
    assert check['power_state'] == 'poweredOff' and power(vm) == 'poweredOn'
    assert 'PowerOffVM_Task' not in check['soap']

    done = ansible_module('vm_power', diff=True, name=VM, state='powered_off')
    assert done['changed'] is True and done['steps'] == ['power_off'] and done['task'].startswith('task')
    assert done['power_state'] == 'poweredOff' and power(vm) == 'poweredOff'
    assert done['vm'] == {'name': VM, 'moid': vm._moId, 'instance_uuid': vm.config.instanceUuid}
    assert done['forced'] is False
    print('SOAP vm_power powered_off: %d %s' % (done['soap_total'], done['soap']))

    again = ansible_module('vm_power', diff=True, name=VM, state='powered_off')
    assert again['changed'] is False and again['steps'] == [] and again['task'] is None
    assert again['diff']['before'] == again['diff']['after'] == {'power_state': 'poweredOff'}
    assert again['soap'].get('RetrievePropertiesEx') == 2  # the lookup by name, then the one power-state read
    assert ansible_module('vm_power', name=VM, state='shutdown_guest')['changed'] is False

    on = ansible_module('vm_power', moid=vm._moId, state='powered_on')
    assert on['changed'] is True and on['steps'] == ['power_on'] and power(vm) == 'poweredOn'
    assert ansible_module('vm_power', moid=vm._moId, state='powered_on')['changed'] is False
    assert str(vm.guest.toolsRunningStatus) == 'guestToolsRunning'


def test_shutdown_guest_waits_for_the_guest(lab, ansible_module, vm):
    lab.control('source', 'guest', method='POST', vm=VM, shutdown_delay_ms=1500)
    check = ansible_module('vm_power', check=True, name=VM, state='shutdown_guest')
    assert check['changed'] is True and check['steps'] == ['shutdown_guest'] and check['forced'] is False
    assert power(vm) == 'poweredOn' and 'ShutdownGuest' not in check['soap']

    done = ansible_module('vm_power', diff=True, name=VM, state='shutdown_guest', shutdown_timeout=60)
    assert done['changed'] is True and done['steps'] == ['shutdown_guest'] and done['forced'] is False
    assert done['task'] is None  # no power task: the guest powered itself off
    assert done['power_state'] == 'poweredOff' and power(vm) == 'poweredOff'
    assert done['shutdown_seconds'] > 0 and done['soap'].get('ShutdownGuest') == 1
    assert 'PowerOffVM_Task' not in done['soap']
    assert str(vm.guest.toolsRunningStatus) == 'guestToolsNotRunning'
    print('SOAP vm_power shutdown_guest: %d %s' % (done['soap_total'], done['soap']))


def test_hung_guest_fails_or_is_forced(lab, ansible_module, vm):
    lab.control('source', 'guest', method='POST', vm=VM, shutdown='ignore')
    stuck = ansible_module('vm_power', name=VM, state='shutdown_guest', shutdown_timeout=1)
    assert stuck['failed'] is True and 'is still running 1s after the guest shutdown request' in stuck['msg']
    assert stuck['fault'] == 'GuestStillRunning' and 'force_after_timeout' in stuck['hint']
    assert power(vm) == 'poweredOn'

    forced = ansible_module('vm_power', name=VM, state='shutdown_guest', shutdown_timeout=1, force_after_timeout=True)
    assert forced['changed'] is True and forced['steps'] == ['shutdown_guest', 'power_off'] and forced['forced'] is True
    assert forced['task'] and power(vm) == 'poweredOff'


def test_tools_not_running(lab, ansible_module, vm):
    lab.control('source', 'guest', method='POST', vm=VM, tools='stopped')
    assert str(vm.guest.toolsRunningStatus) == 'guestToolsNotRunning'
    refused = ansible_module('vm_power', name=VM, state='shutdown_guest')
    assert refused['failed'] is True and refused['fault'] == 'ToolsUnavailable'
    assert 'VMware Tools are not running' in refused['msg'] and power(vm) == 'poweredOn'

    check = ansible_module('vm_power', check=True, name=VM, state='shutdown_guest', force_after_timeout=True)
    assert check['steps'] == ['power_off'] and check['forced'] is True and power(vm) == 'poweredOn'
    forced = ansible_module('vm_power', name=VM, state='shutdown_guest', force_after_timeout=True)
    assert forced['steps'] == ['power_off'] and forced['forced'] is True and power(vm) == 'poweredOff'


def test_unknown_vm(ansible_module):
    missing = ansible_module('vm_power', name='no-such-power-vm', state='powered_on')
    assert missing['failed'] is True and "VM 'no-such-power-vm' not found" in missing['msg']
