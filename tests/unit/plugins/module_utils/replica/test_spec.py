# -*- coding: utf-8 -*-
# Copyright: (c) 2026, replicator.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import pytest
from pyVmomi import vim

from ansible_collections.replicator.vsphere.plugins.module_utils.replica.spec import (
    NetworkUnmapped, ReplicaMismatch, controllers, create_spec, disk_entries, disk_plan, map_networks,
    network_backing, planned_disks, reconfig_spec, replica_instance_uuid, replica_name, source_networks,
)
from ansible_collections.replicator.vsphere.plugins.module_utils.replica.state import decode
from ansible_collections.replicator.vsphere.plugins.module_utils.vsphere.errors import VsphereError

MIB = 1 << 20
SOURCE_UUID = '5003a1b2-c3d4-e5f6-0718-293a4b5c6d7e'


def _disk(key, controller, unit, capacity, disk_uuid=None, file_name=None):
    backing = vim.vm.device.VirtualDisk.FlatVer2BackingInfo(
        fileName=file_name or '[ds] vm/d%d.vmdk' % key, diskMode='persistent', uuid=disk_uuid or 'uuid-%d' % key)
    return vim.vm.device.VirtualDisk(key=key, controllerKey=controller, unitNumber=unit, capacityInBytes=capacity,
                                     capacityInKB=capacity // 1024, backing=backing,
                                     deviceInfo=vim.Description(label='Hard disk', summary='x'))


def _nic(cls, key, network):
    return cls(key=key, backing=vim.vm.device.VirtualEthernetCard.NetworkBackingInfo(deviceName=network),
               wakeOnLanEnabled=True)


def _dvs_nic(key, portgroup_key):
    port = vim.dvs.PortConnection(switchUuid='50 11 22', portgroupKey=portgroup_key)
    return vim.vm.device.VirtualVmxnet3(
        key=key, backing=vim.vm.device.VirtualEthernetCard.DistributedVirtualPortBackingInfo(port=port))


def _source_devices():
    return [
        vim.vm.device.VirtualIDEController(key=200, busNumber=0),
        vim.vm.device.VirtualIDEController(key=201, busNumber=1),
        vim.vm.device.ParaVirtualSCSIController(key=1000, busNumber=0, sharedBus='noSharing'),
        vim.vm.device.VirtualLsiLogicSASController(key=1001, busNumber=1, sharedBus='noSharing'),
        vim.vm.device.VirtualAHCIController(key=15000, busNumber=0),
        _disk(2000, 1000, 0, 64 * MIB),
        _disk(2001, 1000, 1, 96 * MIB),
        _disk(2016, 1001, 0, 32 * MIB),
        _disk(16000, 15000, 2, 8 * MIB),
        _disk(3001, 201, 1, 4 * MIB),
        _nic(vim.vm.device.VirtualVmxnet3, 4000, 'VM Network'),
        _nic(vim.vm.device.VirtualE1000e, 4001, 'Backup'),
        _dvs_nic(4002, 'dvportgroup-7'),
    ]


def _source_props(devices=None):
    return {'name': 'app01', 'config.instanceUuid': SOURCE_UUID, 'config.guestId': 'rhel9_64Guest',
            'config.hardware.numCPU': 4, 'config.hardware.numCoresPerSocket': 2, 'config.hardware.memoryMB': 8192,
            'config.firmware': 'efi', 'config.hardware.device': devices or _source_devices()}


def _identity():
    return {'instance_uuid': SOURCE_UUID, 'name': 'app01', 'moid': 'vm-42', 'vcenter': 'vc-1'}


TARGETS = {
    'VM Network': {'kind': 'standard', 'name': 'DR Network', 'network': None},
    'Backup': {'kind': 'standard', 'name': 'DR Backup', 'network': None},
    'Prod DVS': {'kind': 'dvportgroup', 'switch_uuid': '50 aa bb', 'portgroup_key': 'dvportgroup-99'},
}


def _by_type(changes, cls):
    return [c for c in changes if isinstance(c.device, cls)]


def test_replica_instance_uuid_is_stable_distinct_and_case_blind():
    first = replica_instance_uuid(SOURCE_UUID)
    assert first == replica_instance_uuid(SOURCE_UUID.upper())
    assert first != SOURCE_UUID
    assert first != replica_instance_uuid('5003a1b2-c3d4-e5f6-0718-293a4b5c6d7f')
    assert first.count('-') == 4 and first[14] == '5'  # a version 5 UUID
    with pytest.raises(VsphereError, match='no instance UUID'):
        replica_instance_uuid(None)


def test_replica_name_pattern():
    assert replica_name('{name}_replica', 'app01') == 'app01_replica'
    assert replica_name('dr-{name}-{name}', 'db') == 'dr-db-db'
    assert replica_name('fixed', 'app01') == 'fixed'
    with pytest.raises(VsphereError, match='longer than the 80'):
        replica_name('{name}' + 'x' * 80, 'app01')
    with pytest.raises(VsphereError, match='must not be empty'):
        replica_name('', 'app01')


def test_create_spec_copies_hardware_controllers_disks_and_nics():
    spec = create_spec(_source_props(), 'app01_replica', 'dr-ds1', TARGETS, _identity(),
                       portgroup_names={'dvportgroup-7': 'Prod DVS'})
    assert (spec.name, spec.guestId, spec.numCPUs, spec.numCoresPerSocket, spec.memoryMB, spec.firmware) == \
        ('app01_replica', 'rhel9_64Guest', 4, 2, 8192, 'efi')
    assert spec.instanceUuid == replica_instance_uuid(SOURCE_UUID)
    assert spec.files.vmPathName == '[dr-ds1]'
    changes = spec.deviceChange
    made = dict((c.device.key, c.device) for c in changes)
    ctl = [(type(c.device).__name__, c.device.busNumber) for c in changes
           if isinstance(c.device, (vim.vm.device.VirtualSCSIController, vim.vm.device.VirtualSATAController))]
    assert sorted(ctl) == sorted([('vim.vm.device.ParaVirtualSCSIController', 0),
                                  ('vim.vm.device.VirtualLsiLogicSASController', 1),
                                  ('vim.vm.device.VirtualAHCIController', 0)])
    assert not _by_type(changes, vim.vm.device.VirtualIDEController)  # every VM has them from creation on
    disks = _by_type(changes, vim.vm.device.VirtualDisk)
    placed = []
    for change in disks:
        disk = change.device
        assert change.fileOperation == 'create'
        assert disk.key < 0
        assert disk.backing.thinProvisioned is True and disk.backing.diskMode == 'persistent'
        assert disk.capacityInKB * 1024 == disk.capacityInBytes
        controller = made.get(disk.controllerKey)
        kind = (type(controller).__name__, controller.busNumber) if controller else ('ide', disk.controllerKey - 200)
        placed.append((kind, disk.unitNumber, disk.capacityInBytes))
    assert sorted(placed) == sorted([
        (('vim.vm.device.ParaVirtualSCSIController', 0), 0, 64 * MIB),
        (('vim.vm.device.ParaVirtualSCSIController', 0), 1, 96 * MIB),
        (('vim.vm.device.VirtualLsiLogicSASController', 1), 0, 32 * MIB),
        (('vim.vm.device.VirtualAHCIController', 0), 2, 8 * MIB),
        (('ide', 1), 1, 4 * MIB),
    ])
    cards = [c.device for c in _by_type(changes, vim.vm.device.VirtualEthernetCard)]
    assert [type(c).__name__ for c in cards] == ['vim.vm.device.VirtualVmxnet3', 'vim.vm.device.VirtualE1000e',
                                                 'vim.vm.device.VirtualVmxnet3']
    assert [c.backing.deviceName for c in cards[:2]] == ['DR Network', 'DR Backup']
    assert cards[2].backing.port.portgroupKey == 'dvportgroup-99' and cards[2].backing.port.switchUuid == '50 aa bb'
    assert all(c.connectable.startConnected is False and c.connectable.connected is False for c in cards)
    assert all(c.addressType == 'generated' for c in cards)
    state = decode(spec.extraConfig)
    assert state['source'] == _identity() and state['state'] == 'ready' and state['points'] == []
    assert len(set(made)) == len(changes)  # temporary keys are unique


def test_networks_are_named_and_mapped_or_refused():
    devices = _source_devices()
    names = source_networks(devices, {'dvportgroup-7': 'Prod DVS'})
    assert names == ['VM Network', 'Backup', 'Prod DVS']
    assert map_networks(names, {'VM Network': 'DR', 'Backup': 'DR-B'}, default_network='Isolated') == \
        {'VM Network': 'DR', 'Backup': 'DR-B', 'Prod DVS': 'Isolated'}
    with pytest.raises(NetworkUnmapped, match="'Backup', 'Prod DVS'") as info:
        map_networks(names, {'VM Network': 'DR'})
    assert 'default_network' in info.value.hint
    assert isinstance(network_backing({'kind': 'standard', 'name': 'DR'}),
                      vim.vm.device.VirtualEthernetCard.NetworkBackingInfo)


def _replica_devices(capacities, keys=(2000, 2001), controller_key=202):
    devices = [vim.vm.device.VirtualIDEController(key=200, busNumber=0),
               vim.vm.device.ParaVirtualSCSIController(key=controller_key, busNumber=0)]
    for unit, (key, capacity) in enumerate(zip(keys, capacities)):
        devices.append(_disk(key, controller_key, unit, capacity, disk_uuid='r-%d' % key,
                             file_name='[dr] r/r_%d.vmdk' % unit))
    return devices


def _simple_source(capacities):
    devices = [vim.vm.device.ParaVirtualSCSIController(key=1000, busNumber=0)]
    devices += [_disk(2000 + unit, 1000, unit, capacity) for unit, capacity in enumerate(capacities)]
    return devices


def _state(keys_to_source, capacities):
    return dict((key, {'source_key': source_key, 'source_uuid': 'uuid-%d' % source_key, 'capacity': capacity,
                       'change_id': '52 aa/%d' % key})
                for (key, source_key), capacity in zip(sorted(keys_to_source.items()), capacities))


def test_disk_plan_nothing_to_do_then_grow_and_add():
    source = _simple_source([64 * MIB, 96 * MIB])
    replica = _replica_devices([64 * MIB, 96 * MIB])
    state = _state({2000: 2000, 2001: 2001}, [64 * MIB, 96 * MIB])
    plan = disk_plan(source, replica, state)
    assert plan['grow'] == [] and plan['add'] == []
    assert sorted((k, d.key) for k, d in plan['pairs'].items()) == [(2000, 2000), (2001, 2001)]
    assert reconfig_spec(plan, source, replica) is None

    source = _simple_source([64 * MIB, 128 * MIB, 8 * MIB])
    plan = disk_plan(source, replica, state)
    assert [(d.key, size) for d, size in plan['grow']] == [(2001, 128 * MIB)]
    assert [d.key for d in plan['add']] == [2002]
    spec = reconfig_spec(plan, source, replica)
    edit, add = spec.deviceChange
    assert edit.operation == 'edit' and edit.device.key == 2001 and edit.device.capacityInBytes == 128 * MIB
    assert edit.device.backing.fileName == '[dr] r/r_1.vmdk'  # the device as read, only the size changed
    assert replica[3].capacityInBytes == 96 * MIB  # the input is not modified
    assert add.operation == 'add' and add.fileOperation == 'create'
    assert (add.device.controllerKey, add.device.unitNumber, add.device.capacityInBytes) == (202, 2, 8 * MIB)


def test_disk_plan_adds_missing_controller_of_the_source_type():
    source = _simple_source([64 * MIB]) + [vim.vm.device.VirtualNVMEController(key=31000, busNumber=0),
                                           _disk(3100, 31000, 0, 4 * MIB)]
    replica = _replica_devices([64 * MIB], keys=(2000,))
    plan = disk_plan(source, replica, _state({2000: 2000}, [64 * MIB]))
    changes = reconfig_spec(plan, source, replica).deviceChange
    controller, disk = changes
    assert isinstance(controller.device, vim.vm.device.VirtualNVMEController) and controller.device.busNumber == 0
    assert disk.device.controllerKey == controller.device.key < 0


@pytest.mark.parametrize('source_caps, state_map, message', [
    ([64 * MIB, 32 * MIB], {2000: 2000, 2001: 2001}, 'source disk 2001 shrank from 100663296 to 33554432 bytes'),
    ([64 * MIB], {2000: 2000, 2001: 2001}, 'source disk 2001 (replicated to replica disk 2001) no longer exists'),
])
def test_disk_plan_refuses_what_needs_a_new_replica(source_caps, state_map, message):
    replica = _replica_devices([64 * MIB, 96 * MIB])
    with pytest.raises(ReplicaMismatch) as info:
        disk_plan(_simple_source(source_caps), replica, _state(state_map, [64 * MIB, 96 * MIB]))
    assert message in info.value.msg
    assert 'state: absent' in info.value.hint


def test_disk_plan_refuses_replaced_source_disk_and_missing_replica_disk():
    source = _simple_source([64 * MIB, 96 * MIB])
    source[2].backing.uuid = 'another-disk'
    with pytest.raises(ReplicaMismatch, match='source disk 2001 was replaced'):
        disk_plan(source, _replica_devices([64 * MIB, 96 * MIB]), _state({2000: 2000, 2001: 2001},
                                                                         [64 * MIB, 96 * MIB]))
    with pytest.raises(ReplicaMismatch, match='replica disk 2001 .for source disk 2001. is missing'):
        disk_plan(_simple_source([64 * MIB, 96 * MIB]), _replica_devices([64 * MIB], keys=(2000,)),
                  _state({2000: 2000, 2001: 2001}, [64 * MIB, 96 * MIB]))


def test_disk_plan_adopts_unmapped_replica_disks_by_slot():
    """A run that died between CreateVM and the state write left disks without a map: pair them, add nothing."""
    source = _simple_source([64 * MIB, 96 * MIB])
    replica = _replica_devices([64 * MIB, 96 * MIB], keys=(2000, 2001))
    plan = disk_plan(source, replica, {})
    assert plan['add'] == [] and plan['grow'] == []
    entries = disk_entries(plan['pairs'], replica, {})
    assert entries[2001] == {'source_key': 2001, 'source_uuid': 'uuid-2001', 'uuid': 'r-2001',
                             'capacity': 96 * MIB, 'file': '[dr] r/r_1.vmdk', 'change_id': None}


def test_disk_entries_keep_the_committed_change_id():
    source = _simple_source([64 * MIB])
    replica = _replica_devices([64 * MIB], keys=(2000,))
    state = _state({2000: 2000}, [64 * MIB])
    entries = disk_entries(disk_plan(source, replica, state)['pairs'], replica, state)
    assert entries[2000]['change_id'] == '52 aa/2000'


def test_controllers_and_planned_disks():
    devices = _source_devices()
    assert controllers(devices) == {200: ('ide', 0), 201: ('ide', 1), 1000: ('scsi', 0), 1001: ('scsi', 1),
                                    15000: ('sata', 0)}
    planned = planned_disks(devices)
    assert [(d['source_key'], d['capacity_bytes'], d['key']) for d in planned] == [
        (2000, 64 * MIB, None), (2001, 96 * MIB, None), (2016, 32 * MIB, None), (3001, 4 * MIB, None),
        (16000, 8 * MIB, None)]
