# -*- coding: utf-8 -*-
# Copyright: (c) 2026, replicator.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""disk_facts works on pyvmomi data objects as a PropertyCollector returns them (no server involved)."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

from pyVmomi import vim

from ansible_collections.replicator.vsphere.plugins.module_utils.vsphere.vm_disks import (
    backing_chain, disk_facts, split_datastore_path,
)


def _disk(key, filename, capacity, mode='persistent', parent=None, change_id=None, rdm=False):
    if rdm:
        backing = vim.vm.device.VirtualDisk.RawDiskMappingVer1BackingInfo(fileName=filename, diskMode=mode,
                                                                          compatibilityMode='physicalMode')
    else:
        backing = vim.vm.device.VirtualDisk.FlatVer2BackingInfo(fileName=filename, diskMode=mode, parent=parent,
                                                                changeId=change_id, uuid='6000C29%d' % key)
    return vim.vm.device.VirtualDisk(key=key, backing=backing, capacityInKB=capacity // 1024,
                                     capacityInBytes=capacity, controllerKey=1000, unitNumber=key - 2000,
                                     deviceInfo=vim.Description(label='Hard disk %d' % (key - 1999), summary=''))


def test_split_datastore_path():
    assert split_datastore_path('[ds 1] app01/app01.vmdk') == ('ds 1', 'app01/app01.vmdk')
    assert split_datastore_path('/vmfs/volumes/x.vmdk') == (None, '/vmfs/volumes/x.vmdk')


def test_disk_facts_sorted_with_chain_and_untrackable():
    base = vim.vm.device.VirtualDisk.FlatVer2BackingInfo(fileName='[ds1] app01/app01.vmdk')
    devices = [
        vim.vm.device.VirtualLsiLogicController(key=1000),
        _disk(2001, '[ds1] app01/app01_1.vmdk', 96 << 20, mode='independent_persistent'),
        _disk(2000, '[ds1] app01/app01-000001.vmdk', 64 << 20, parent=base, change_id='52 aa/3'),
        _disk(2002, '[ds1] app01/rdm.vmdk', 1 << 30, rdm=True),
    ]
    disks = disk_facts(devices)
    assert [d['key'] for d in disks] == [2000, 2001, 2002]
    first = disks[0]
    assert first['chain'] == ['[ds1] app01/app01-000001.vmdk', '[ds1] app01/app01.vmdk']
    assert first['capacity_bytes'] == 64 << 20
    assert first['datastore'] == 'ds1'
    assert first['change_id'] == '52 aa/3'
    assert first['untrackable'] is None
    assert 'independent' in disks[1]['untrackable']
    assert 'RDM' in disks[2]['untrackable']


def test_capacity_falls_back_to_kb():
    disk = _disk(2000, '[ds1] a.vmdk', 8 << 20)
    disk.capacityInBytes = 0
    assert disk_facts([disk])[0]['capacity_bytes'] == 8 << 20


def test_backing_chain_of_none():
    assert backing_chain(None) == []
