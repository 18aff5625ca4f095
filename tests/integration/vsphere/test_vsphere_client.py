# -*- coding: utf-8 -*-
# Copyright: (c) 2026, replicator.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The control plane module_utils against the lab: login, TLS, lookup, PropertyCollector reads, the task waiter,
with the lab's SOAP counter proving the number of round trips."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import pytest
from pyVmomi import vim

from ansible_collections.replicator.vsphere.plugins.module_utils.vsphere.client import VsphereClient
from ansible_collections.replicator.vsphere.plugins.module_utils.vsphere.errors import (
    Ambiguous, ConnectionFailed, NotFound, TaskFailed, TaskTimeout, VsphereError,
)
from ansible_collections.replicator.vsphere.plugins.module_utils.vsphere.lookup import find_datacenter, find_vm
from ansible_collections.replicator.vsphere.plugins.module_utils.vsphere.properties import fetch, fetch_many, find_all
from ansible_collections.replicator.vsphere.plugins.module_utils.vsphere.tasks import wait_for_task

from integration_servers import free_port


def _settings(lab, site='source', **overrides):
    s = lab.state['sites'][site]
    settings = dict(hostname=s['host'], port=s['port'], username=s['username'], password=s['password'],
                    validate_certs=True, ca_path=s['cafile'], timeout=30)
    settings.update(overrides)
    return settings


@pytest.fixture(scope='module')
def client(lab):
    with VsphereClient(**_settings(lab)) as c:
        yield c


class Counter(object):
    """SOAP calls per method between two points, from the lab's counter."""

    def __init__(self, lab, site='source'):
        self.lab, self.site = lab, site

    def __enter__(self):
        self.before = self.lab.control(self.site, 'counters')
        return self

    def __exit__(self, *exc):
        after = self.lab.control(self.site, 'counters')
        self.calls = dict((k, v - self.before.get(k, 0)) for k, v in after.items() if v != self.before.get(k, 0))

    @property
    def total(self):
        return sum(self.calls.values())


def test_login_verifies_the_lab_certificate(lab, client):
    assert client.content.about.apiType == 'VirtualCenter'
    with VsphereClient(**_settings(lab, 'target')) as target:
        assert target.content.about.apiType == 'HostAgent'


def test_tls_verification_without_the_ca_fails_clearly(lab):
    with pytest.raises(ConnectionFailed) as err:
        VsphereClient(**_settings(lab, ca_path=None))
    assert 'TLS' in err.value.msg
    assert 'ca_path' in err.value.hint


def test_validate_certs_false_accepts_the_self_signed_certificate(lab):
    with VsphereClient(**_settings(lab, validate_certs=False, ca_path=None)) as c:
        assert c.content.about.apiType == 'VirtualCenter'


def test_wrong_password_is_invalid_login_and_not_echoed(lab):
    with pytest.raises(ConnectionFailed) as err:
        VsphereClient(**_settings(lab, password='not-the-password'))
    assert err.value.fault == 'InvalidLogin'
    assert 'not-the-password' not in err.value.msg
    assert lab.state['sites']['source']['password'] not in err.value.msg


def test_unreachable_host_is_a_clear_error(lab):
    port = free_port()  # nothing listens there
    with pytest.raises(ConnectionFailed) as err:
        VsphereClient(**_settings(lab, port=port, timeout=5))
    assert 'Cannot reach' in err.value.msg or 'Cannot log in' in err.value.msg
    assert err.value.hint


def test_missing_options_name_the_environment_variables(lab):
    with pytest.raises(ConnectionFailed) as err:
        VsphereClient(**_settings(lab, hostname=None, password=''))
    assert 'hostname' in err.value.msg and 'password' in err.value.msg
    assert 'VMWARE_HOST' in err.value.hint


def test_lookup_by_name_moid_and_uuids(lab, client):
    vm = find_vm(client, {'name': 'app01'})
    props = fetch(client, vm, ['name', 'config.instanceUuid', 'config.uuid'])
    assert props['name'] == 'app01'
    assert find_vm(client, {'moid': vm._moId})._moId == vm._moId
    assert find_vm(client, {'uuid': props['config.instanceUuid'], 'use_instance_uuid': True})._moId == vm._moId
    assert find_vm(client, {'uuid': props['config.uuid'], 'use_instance_uuid': False})._moId == vm._moId
    assert find_vm(client, {'name': 'app01', 'datacenter': 'SRC-DC'})._moId == vm._moId
    # moid wins over name
    assert find_vm(client, {'moid': vm._moId, 'name': 'web01'})._moId == vm._moId


def test_lookup_failures_are_typed_and_clear(client):
    with pytest.raises(NotFound, match="VM 'nope' not found"):
        find_vm(client, {'name': 'nope'})
    with pytest.raises(NotFound):
        find_vm(client, {'moid': 'vm-999999'})
    with pytest.raises(NotFound, match="Datacenter 'NO-DC'"):
        find_vm(client, {'name': 'app01', 'datacenter': 'NO-DC'})
    with pytest.raises(VsphereError, match='folder needs datacenter'):
        find_vm(client, {'name': 'app01', 'folder': 'x'})
    with pytest.raises(VsphereError, match='set one of moid, uuid or name'):
        find_vm(client, {})


def test_ambiguous_name_then_folder_disambiguates(lab, client):
    datacenter = find_datacenter(client, 'SRC-DC')
    dc_props = fetch(client, datacenter, ['vmFolder', 'datastore'])
    folder = dc_props['vmFolder'].CreateFolder('lookup-test')
    pool = find_all(client, vim.ResourcePool, ['name'])[0][0]
    spec = vim.vm.ConfigSpec(name='web01', guestId='otherGuest64', numCPUs=1, memoryMB=128,
                             files=vim.vm.FileInfo(vmPathName='[src-ds1]'))
    twin = wait_for_task(client, folder.CreateVM_Task(config=spec, pool=pool), 'Creating a second web01')
    try:
        with pytest.raises(Ambiguous) as err:
            find_vm(client, {'name': 'web01'})
        assert 'matches 2 VMs' in err.value.msg and 'moid' in err.value.hint
        found = find_vm(client, {'name': 'web01', 'folder': 'lookup-test', 'datacenter': 'SRC-DC'})
        assert found._moId == twin._moId
    finally:
        wait_for_task(client, twin.Destroy_Task(), 'Destroying the second web01')
        wait_for_task(client, folder.Destroy_Task(), 'Destroying folder lookup-test')


def test_fetch_is_one_round_trip(lab, client):
    vm = find_vm(client, {'name': 'db01'})
    with Counter(lab) as count:
        props = fetch(client, vm, ['name', 'config.hardware.device', 'runtime.powerState', 'snapshot'])
    assert count.calls == {'RetrievePropertiesEx': 1}
    assert props['name'] == 'db01'
    assert props['snapshot'] is None  # unset property: None, not a crash
    assert len([d for d in props['config.hardware.device'] if isinstance(d, vim.vm.device.VirtualDisk)]) == 3


def test_find_all_costs_three_calls_and_fetch_many_one(lab, client):
    with Counter(lab) as count:
        vms = find_all(client, vim.VirtualMachine, ['name', 'config.changeTrackingEnabled'])
    assert count.calls == {'CreateContainerView': 1, 'RetrievePropertiesEx': 1, 'DestroyView': 1}
    names = sorted(props['name'] for _vm, props in vms)
    assert {'app01', 'db01', 'web01', 'web02'} <= set(names)
    with Counter(lab) as count:
        many = fetch_many(client, [vm for vm, _p in vms], ['name'])
    assert count.calls == {'RetrievePropertiesEx': 1}
    assert sorted(p['name'] for _vm, p in many) == names
    assert fetch_many(client, [], ['name']) == []


def test_wait_for_task_success_and_failure(lab, client):
    vm = find_vm(client, {'name': 'web02'})
    spec = vim.vm.ConfigSpec(annotation='touched by the control plane test')
    assert wait_for_task(client, vm.ReconfigVM_Task(spec), 'Reconfiguring web02') is None
    assert fetch(client, vm, ['config.annotation'])['config.annotation'] == 'touched by the control plane test'
    # A powered-on VM cannot be destroyed: the task ends in error and the error names the action and fault.
    with pytest.raises(TaskFailed) as err:
        wait_for_task(client, vm.Destroy_Task(), 'Destroying web02')
    assert err.value.msg.startswith('Destroying web02 failed: ')
    assert err.value.fault and err.value.task.startswith('task-')


def test_wait_for_task_timeout_reports_the_running_task(lab, client):
    vm = find_vm(client, {'name': 'web02'})
    task = vm.ReconfigVM_Task(vim.vm.ConfigSpec(annotation=''))
    with pytest.raises(TaskTimeout) as err:
        wait_for_task(client, task, 'Reconfiguring web02', timeout=0)
    assert task._moId in err.value.msg and 'still running' in err.value.msg
    assert err.value.task == task._moId
