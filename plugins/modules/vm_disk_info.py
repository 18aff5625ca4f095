#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, replicator.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
module: vm_disk_info
short_description: List VMs with their disks and Changed Block Tracking status
version_added: 0.1.0
description:
  - Reports, for one VM or every VM of a vCenter / ESXi host, the virtual disks with capacity, backing file,
    snapshot chain, disk UUID and CBT changeId, and whether CBT is enabled.
  - Use it to plan replication jobs, to see which disks CBT can track, and to check CBT after a stun cycle.
  - Reads everything in one PropertyCollector round trip (three SOAP calls for a whole inventory).
author:
  - replicator.vsphere contributors (@replicator-vsphere)
extends_documentation_fragment:
  - replicator.vsphere.connection
  - replicator.vsphere.vm_identity
attributes:
  check_mode:
    support: full
    description: The module only reads.
options: {}
notes:
  - Without O(name), O(uuid) or O(moid) every VM is listed (scoped by O(datacenter) when given).
'''

EXAMPLES = r'''
- name: List every VM with its disks and CBT status
  replicator.vsphere.vm_disk_info:
    hostname: vcenter.example.com
    username: administrator@vsphere.local
    password: "{{ vcenter_password }}"
  register: inventory

- name: One VM, connection from module_defaults
  module_defaults:
    group/replicator.vsphere.vsphere:
      hostname: vcenter.example.com
      username: administrator@vsphere.local
      password: "{{ vcenter_password }}"
  block:
    - name: Disks of app01
      replicator.vsphere.vm_disk_info:
        name: app01
        datacenter: DC1
      register: app01
'''

RETURN = r'''
vms:
  description: The VMs found, sorted by name.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: VM name.
      type: str
      sample: app01
    moid:
      description: Managed object ID.
      type: str
      sample: vm-42
    instance_uuid:
      description: vCenter instance UUID.
      type: str
    bios_uuid:
      description: BIOS UUID.
      type: str
    power_state:
      description: V(poweredOn), V(poweredOff) or V(suspended).
      type: str
    cbt_enabled:
      description: Whether C(changeTrackingEnabled) is set in the VM configuration.
      type: bool
    has_snapshots:
      description: Whether the VM has at least one snapshot.
      type: bool
    disks:
      description: Virtual disks in device key order.
      type: list
      elements: dict
      contains:
        key:
          description: Device key.
          type: int
          sample: 2000
        label:
          description: Device label.
          type: str
          sample: Hard disk 1
        capacity_bytes:
          description: Capacity in bytes.
          type: int
        file:
          description: Current backing file (a delta disk while snapshots exist).
          type: str
          sample: "[ds1] app01/app01.vmdk"
        datastore:
          description: Datastore of the current backing file.
          type: str
        chain:
          description: Backing files from the current one down to the base disk.
          type: list
          elements: str
        uuid:
          description: Disk UUID.
          type: str
        change_id:
          description: CBT changeId of the current backing, empty until CBT is active on the disk.
          type: str
        mode:
          description: Disk mode, for example V(persistent) or V(independent_persistent).
          type: str
        untrackable:
          description: Why CBT cannot track this disk (independent disk, physical RDM), or null.
          type: str
'''

try:
    from pyVmomi import vim
except ImportError:
    vim = None  # vsphere_module reports the missing library

from ansible_collections.replicator.vsphere.plugins.module_utils.vsphere.vm_disks import disk_facts
from ansible_collections.replicator.vsphere.plugins.module_utils.vsphere.args import (
    vm_identity_argument_spec, vm_identity_params,
)
from ansible_collections.replicator.vsphere.plugins.module_utils.vsphere.lookup import find_datacenter, find_vm
from ansible_collections.replicator.vsphere.plugins.module_utils.vsphere.module import run_module, vsphere_module
from ansible_collections.replicator.vsphere.plugins.module_utils.vsphere.properties import fetch, find_all

PATHS = ['name', 'config.instanceUuid', 'config.uuid', 'config.changeTrackingEnabled', 'config.hardware.device',
         'runtime.powerState', 'snapshot']


def vm_facts(vm, props):
    return {
        'name': props['name'],
        'moid': vm._moId,
        'instance_uuid': props['config.instanceUuid'],
        'bios_uuid': props['config.uuid'],
        'power_state': str(props['runtime.powerState']) if props['runtime.powerState'] else None,
        'cbt_enabled': bool(props['config.changeTrackingEnabled']),
        'has_snapshots': props['snapshot'] is not None,
        'disks': disk_facts(props['config.hardware.device']),
    }


def main():
    module = vsphere_module(vm_identity_argument_spec())
    identity = vm_identity_params(module.params)

    def body(client):
        if identity['moid'] or identity['uuid'] or identity['name']:
            vm = find_vm(client, identity)
            found = [(vm, fetch(client, vm, PATHS))]
        else:
            root = find_datacenter(client, identity['datacenter']).vmFolder if identity['datacenter'] else None
            found = find_all(client, vim.VirtualMachine, PATHS, root=root)
        vms = sorted((vm_facts(vm, props) for vm, props in found), key=lambda v: (v['name'] or '', v['moid']))
        return {'changed': False, 'vms': vms}

    run_module(module, body)


if __name__ == '__main__':
    main()
