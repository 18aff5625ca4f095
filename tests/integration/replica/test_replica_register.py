# -*- coding: utf-8 -*-
# Copyright: (c) 2026, replicator.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""replica_register against the lab, run through Ansible: check mode, create, re-apply, grow, lock, absent, errors."""

from __future__ import absolute_import, division, print_function

import json
import os
import time

import pytest

from ansible_collections.replicator.vsphere.tests.integration.replica.conftest import (
    add_nic, extra_config, set_extra_config, vm_named,
)

__metaclass__ = type

MIB = 1 << 20
pytestmark = pytest.mark.timeout(600)


def _args(conn, name, **extra):
    args = dict(conn, name=name, datacenter='SRC-DC', target_host='dr-esx01', target_datastore='dr-ds1',
                replica_name='rr-{name}', network_map={'VM Network': 'DR Network'})
    args.update(extra)
    return args


def _replica_dir(lab, name):
    return os.path.join(lab.state['sites']['target']['datastores']['dr-ds1'], name)


def _disks(vm):
    from pyVmomi import vim
    return sorted((d for d in vm.config.hardware.device if isinstance(d, vim.vm.device.VirtualDisk)),
                  key=lambda d: d.key)


def _grow_and_add(lab, vm, key, capacity, new_unit, new_capacity):
    from pyVmomi import vim
    disk = [d for d in _disks(vm) if d.key == key][0]
    disk.capacityInBytes, disk.capacityInKB = capacity, capacity // 1024
    new = vim.vm.device.VirtualDisk(key=-1, controllerKey=disk.controllerKey, unitNumber=new_unit,
                                    capacityInBytes=new_capacity, capacityInKB=new_capacity // 1024,
                                    backing=vim.vm.device.VirtualDisk.FlatVer2BackingInfo(
                                        diskMode='persistent', thinProvisioned=True))
    spec = vim.vm.ConfigSpec(deviceChange=[
        vim.vm.device.VirtualDeviceSpec(operation='edit', device=disk),
        vim.vm.device.VirtualDeviceSpec(operation='add', fileOperation='create', device=new)])
    lab.wait(vm.ReconfigVM_Task(spec))


@pytest.fixture
def source_vm(lab):
    made = []

    def make(name, disks_mib=(8, 4), nic=True):
        vm = lab.new_vm(name, disks_mib=disks_mib)
        if nic:
            add_nic(lab, vm)
        made.append(vm)
        return vm
    yield make
    for vm in made:
        lab.destroy_vm(vm)


@pytest.fixture
def cleanup(lab, conn, run):
    """Replicas named here are removed (state absent) after the test, whatever happened."""
    names = []
    yield names.append
    for name in names:
        run('replica_register', _args(conn, name, state='absent'))


def test_create_check_apply_reapply_grow_absent(lab, conn, source_vm, cleanup, source_si, target_si, run):
    from pyVmomi import vim
    from ansible_collections.replicator.vsphere.plugins.module_utils.replica.spec import replica_instance_uuid
    src = source_vm('rr-life', disks_mib=(8, 4))
    cleanup('rr-life')
    args = _args(conn, 'rr-life')

    checked = run('replica_register', args, check=True, diff=True)
    assert checked.status == 'CHANGED', checked.output
    assert checked['replica']['moid'] is None
    planned = [(d['source_key'], d['capacity_bytes']) for d in checked['replica']['disks']]
    assert planned == [(2000, 8 * MIB), (2001, 4 * MIB)]
    assert vm_named(target_si, 'rr-rr-life') is None, 'check mode created the replica'

    created = run('replica_register', args)
    counts = created['soap']
    print('SOAP calls on the target to create a replica: %s' % json.dumps(counts, sort_keys=True))
    assert created.status == 'CHANGED', created.output
    replica = created['replica']
    assert replica['name'] == 'rr-rr-life' and replica['state'] == 'ready' and replica['lock'] is None
    assert replica['source']['instance_uuid'] == src.config.instanceUuid == created['vm']['instance_uuid']
    rvm = vm_named(target_si, 'rr-rr-life')
    assert rvm._moId == replica['moid']
    cfg = rvm.config
    assert cfg.instanceUuid == replica_instance_uuid(src.config.instanceUuid) == replica['instance_uuid']
    assert (cfg.guestId, cfg.hardware.numCPU, cfg.hardware.memoryMB) == (src.config.guestId, src.config.hardware.numCPU,
                                                                         src.config.hardware.memoryMB)
    assert rvm.runtime.powerState == 'poweredOff'
    controllers = [d for d in cfg.hardware.device if isinstance(d, vim.vm.device.ParaVirtualSCSIController)]
    assert [c.busNumber for c in controllers] == [0]
    disks = _disks(rvm)
    assert [(d.controllerKey, d.unitNumber, d.capacityInBytes) for d in disks] == \
        [(controllers[0].key, 0, 8 * MIB), (controllers[0].key, 1, 4 * MIB)]
    assert all(d.backing.thinProvisioned for d in disks)
    assert [(d['key'], d['source_key'], d['uuid'], d['file']) for d in replica['disks']] == \
        [(d.key, s.key, d.backing.uuid, d.backing.fileName) for d, s in zip(disks, _disks(src))]
    nics = [d for d in cfg.hardware.device if isinstance(d, vim.vm.device.VirtualEthernetCard)]
    assert [(type(n).__name__, n.backing.deviceName, n.connectable.startConnected) for n in nics] == \
        [('vim.vm.device.VirtualVmxnet3', 'DR Network', False)]
    stored = json.loads(extra_config(rvm)['replicator.source'])
    assert stored['instance_uuid'] == src.config.instanceUuid and stored['name'] == 'rr-life'
    flat = os.path.join(_replica_dir(lab, 'rr-rr-life'), 'rr-rr-life_1-flat.vmdk')
    assert os.path.getsize(flat) == 4 * MIB

    again = run('replica_register', args)
    counts = again['soap']
    assert again.status == 'SUCCESS' and again['changed'] is False, again.output
    assert again['replica'] == replica
    # found in one search by the derived instance UUID: no inventory scan, no write
    assert counts.get('FindAllByUuid') == 1 and counts.get('RetrievePropertiesEx') == 1, counts
    assert not set(counts) & {'CreateContainerView', 'ReconfigVM_Task', 'CreateVM_Task'}, counts
    print('SOAP calls on the target for a re-apply with nothing to do: %s' % json.dumps(counts, sort_keys=True))

    _grow_and_add(lab, src, 2001, 12 * MIB, 2, 2 * MIB)
    grow_check = run('replica_register', args, check=True, diff=True)
    assert grow_check.status == 'CHANGED', grow_check.output
    assert 'grow replica disk 2001 to %d bytes' % (12 * MIB) in grow_check['actions']
    assert 'add a replica disk for source disk 2002' in grow_check['actions']
    assert os.path.getsize(flat) == 4 * MIB and len(_disks(rvm)) == 2, 'check mode changed the disks'

    grown = run('replica_register', args)
    counts = grown['soap']
    print('SOAP calls on the target to grow one disk and add one: %s' % json.dumps(counts, sort_keys=True))
    assert grown.status == 'CHANGED', grown.output
    assert [(d['source_key'], d['capacity_bytes']) for d in grown['replica']['disks']] == \
        [(2000, 8 * MIB), (2001, 12 * MIB), (2002, 2 * MIB)]
    assert os.path.getsize(flat) == 12 * MIB
    assert [d.capacityInBytes for d in _disks(rvm)] == [8 * MIB, 12 * MIB, 2 * MIB]
    assert run('replica_register', args)['changed'] is False

    absent_check = run('replica_register', dict(args, state='absent'), check=True)
    assert absent_check.status == 'CHANGED' and vm_named(target_si, 'rr-rr-life') is not None
    gone = run('replica_register', dict(args, state='absent'))
    assert gone.status == 'CHANGED', gone.output
    assert vm_named(target_si, 'rr-rr-life') is None
    assert not os.path.exists(_replica_dir(lab, 'rr-rr-life'))
    assert run('replica_register', dict(args, state='absent'))['changed'] is False


def test_lock_held_expired_and_released(lab, conn, source_vm, cleanup, source_si, target_si, run):
    source_vm('rr-lock', disks_mib=(4,), nic=False)
    cleanup('rr-lock')
    args = _args(conn, 'rr-lock', lock_ttl=600)
    first = run('replica_register', dict(args, lock='acquire', lock_run_id='run-a', lock_owner='ctl-a'))
    assert first.status == 'CHANGED', first.output
    lock = first['replica']['lock']
    assert (lock['run'], lock['owner'], lock['held']) == ('run-a', 'ctl-a', True)
    assert lock['expires'] - lock['acquired'] == 600

    second = run('replica_register', dict(args, lock='acquire', lock_run_id='run-b'))
    assert second.failed and second['fault'] == 'LockHeld', second.output
    assert 'LockHeld' in second['msg'] and 'run-a of ctl-a' in second['msg']
    assert run('replica_register', dict(args, lock='release', lock_run_id='run-b'))['fault'] == 'LockHeld'
    refused = run('replica_register', dict(args, state='absent', lock_run_id='run-b'))
    assert refused.failed and refused['fault'] == 'LockHeld'
    assert vm_named(target_si, 'rr-rr-lock') is not None
    # the source disk grew, but run-a is writing to the replica: its disks are left alone
    src = lab.find_vm(source_si, 'rr-lock')
    _grow_and_add(lab, src, 2000, 6 * MIB, 1, 1 * MIB)
    blocked = run('replica_register', args)
    assert blocked.failed and blocked['fault'] == 'LockHeld', blocked.output
    assert os.path.getsize(os.path.join(_replica_dir(lab, 'rr-rr-lock'), 'rr-rr-lock-flat.vmdk')) == 4 * MIB
    assert run('replica_register', dict(args, lock_run_id='run-a')).status == 'CHANGED'  # the holder may
    assert os.path.getsize(os.path.join(_replica_dir(lab, 'rr-rr-lock'), 'rr-rr-lock-flat.vmdk')) == 6 * MIB

    # run-a crashed long ago: its lease expired, so run-b takes the lock over
    rvm = vm_named(target_si, 'rr-rr-lock')
    past = int(time.time()) - 120
    set_extra_config(lab, rvm, {'replicator.lock': json.dumps({'owner': 'ctl-a', 'run': 'run-a', 'acquired': past - 600,
                                                               'expires': past})})
    taken = run('replica_register', dict(args, lock='acquire', lock_run_id='run-b'))
    assert taken.status == 'CHANGED', taken.output
    assert taken['replica']['lock']['run'] == 'run-b' and taken['run_id'] == 'run-b'
    released = run('replica_register', dict(args, lock='release', lock_run_id='run-b'))
    assert released.status == 'CHANGED' and released['replica']['lock'] is None
    assert 'replicator.lock' not in extra_config(rvm)
    assert run('replica_register', dict(args, lock='release', lock_run_id='run-b'))['changed'] is False


def test_removed_source_disk_needs_a_new_replica(lab, conn, source_vm, cleanup, run):
    from pyVmomi import vim
    src = source_vm('rr-shrink', disks_mib=(4, 2), nic=False)
    cleanup('rr-shrink')
    args = _args(conn, 'rr-shrink')
    assert run('replica_register', args).status == 'CHANGED'
    removed = _disks(src)[1]
    lab.wait(src.ReconfigVM_Task(vim.vm.ConfigSpec(deviceChange=[
        vim.vm.device.VirtualDeviceSpec(operation='remove', device=removed)])))
    result = run('replica_register', args)
    assert result.failed and result['fault'] == 'ReplicaMismatch', result.output
    assert 'source disk %d (replicated to replica disk' % removed.key in result['msg']
    assert 'state: absent' in result['hint']


def test_name_taken_by_another_vm_is_never_adopted(lab, conn, source_vm, target_si, run):
    from pyVmomi import vim
    source_vm('rr-clash', disks_mib=(2,), nic=False)
    content = target_si.RetrieveContent()
    dc = content.rootFolder.childEntity[0]
    view = content.viewManager.CreateContainerView(content.rootFolder, [vim.HostSystem], True)
    try:
        esx = view.view[0]
    finally:
        view.DestroyView()
    other = lab.wait(dc.vmFolder.CreateVM_Task(config=vim.vm.ConfigSpec(
        name='rr-rr-clash', guestId='otherGuest', files=vim.vm.FileInfo(vmPathName='[dr-ds1]')),
        pool=esx.parent.resourcePool, host=esx))
    try:
        result = run('replica_register', _args(conn, 'rr-clash'))
        assert result.failed and result['fault'] == 'NotOurReplica', result.output
        assert "A VM named 'rr-rr-clash' (%s)" % other._moId in result['msg']
        assert not any(o.key.startswith('replicator.') for o in other.config.extraConfig or [])
        assert len([d for d in other.config.hardware.device if isinstance(d, vim.vm.device.VirtualDisk)]) == 0
    finally:
        lab.wait(other.Destroy_Task())


def test_unmapped_network_unknown_vm_and_bad_password(lab, conn, target_si, run):
    unmapped = run('replica_register', _args(conn, 'app01', network_map={}))
    assert unmapped.failed and unmapped['fault'] == 'NetworkUnmapped', unmapped.output
    assert "'VM Network'" in unmapped['msg'] and 'default_network' in unmapped['hint']
    assert vm_named(target_si, 'rr-app01') is None

    missing = run('replica_register', _args(conn, 'no-such-vm'))
    assert missing.failed and missing['fault'] == 'NotFound'
    assert "VM 'no-such-vm'" in missing['msg']

    denied = run('replica_register', _args(dict(conn, password='wrong'), 'app01'))
    assert denied.failed and denied['fault'] == 'InvalidLogin', denied.output
    assert 'wrong' not in denied['msg']
