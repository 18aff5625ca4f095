#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, replicator.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
module: vm_snapshot
short_description: Create, remove or revert to a VM snapshot, and report what each disk froze
version_added: 0.1.0
description:
  - Ensures a snapshot of a VM exists (O(state=present)), does not exist (O(state=absent)), or that the VM is
    reverted to it (O(state=reverted)).
  - Snapshots are identified by name, optionally with the name of their parent snapshot. The whole snapshot tree
    is searched, siblings included. A name is never created twice.
  - For the snapshot, returns per disk the device key, disk UUID, capacity, backing file with its parent chain and
    the CBT changeId, as the snapshot recorded them. This is what a replication cycle reads.
author:
  - replicator.vsphere contributors (@replicator-vsphere)
extends_documentation_fragment:
  - replicator.vsphere.connection
  - replicator.vsphere.vm_identity
attributes:
  check_mode:
    support: full
    description: Reports what would be created, removed or reverted, and changes nothing.
  diff_mode:
    support: full
    description: Shows whether the snapshot exists before and after.
options:
  state:
    description:
      - V(present) creates the snapshot unless one with this name (and parent) already exists. An existing
        snapshot is never modified (its description, memory and quiesce settings stay as they were).
      - V(absent) removes it; its children are kept and their data merges down. A missing snapshot is not an error.
      - V(reverted) reverts the VM to it; this always reports a change. A missing snapshot is an error.
    type: str
    choices: [present, absent, reverted]
    default: present
  snapshot_name:
    description:
      - The name of the snapshot.
      - When several snapshots of the VM have this name, the module fails unless O(parent_name) picks one.
    type: str
    required: true
    aliases: [snapshot]
  parent_name:
    description:
      - The name of the parent snapshot, to tell apart snapshots with the same name.
      - With O(state=present) and no match, the new snapshot is created only if the VM's current snapshot has
        this name, because vSphere always creates a snapshot as a child of the current one.
    type: str
  description:
    description:
      - Description of a new snapshot.
    type: str
    default: ''
  memory:
    description:
      - Include the memory of a powered-on VM in a new snapshot.
    type: bool
    default: false
  quiesce:
    description:
      - Quiesce the guest file systems (needs VMware Tools) before a new snapshot is taken.
    type: bool
    default: false
  task_timeout:
    description:
      - Seconds to wait for the vSphere task.
      - When it runs longer the module fails with RV(still_running=true) and the task's moid in RV(task); the task
        goes on in vSphere.
      - V(0) does not wait at all.
    type: int
    default: 3600
notes:
  - One of O(name), O(uuid) or O(moid) is required.
'''

EXAMPLES = r'''
- name: Snapshot app01 for a replication cycle, quiescing the guest
  replicator.vsphere.vm_snapshot:
    hostname: vcenter.example.com
    username: administrator@vsphere.local
    password: "{{ vcenter_password }}"
    name: app01
    snapshot_name: replicator-cycle
    description: Replication cycle
    quiesce: true
  register: cycle

- name: Show the changeId of each disk
  ansible.builtin.debug:
    msg: "{{ cycle.snapshot.disks | map(attribute='change_id') | list }}"

- name: Remove the cycle snapshot, whatever happened before
  replicator.vsphere.vm_snapshot:
    moid: "{{ cycle.vm.moid }}"
    snapshot_name: replicator-cycle
    state: absent

- name: Revert to the 'before-upgrade' snapshot that is a child of 'base'
  replicator.vsphere.vm_snapshot:
    name: db01
    datacenter: DC1
    snapshot_name: before-upgrade
    parent_name: base
    state: reverted
'''

RETURN = r'''
vm:
  description: The VM.
  returned: always
  type: dict
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
snapshot:
  description:
    - The snapshot found, created, removed or reverted to; null when O(state=absent) found nothing.
    - In check mode a snapshot that would be created has a null RV(snapshot.moid) and no disks.
  returned: always
  type: dict
  contains:
    name:
      description: Snapshot name.
      type: str
    moid:
      description: Managed object ID of the snapshot.
      type: str
      sample: snapshot-101
    id:
      description: The snapshot's ID within the VM.
      type: int
    description:
      description: Snapshot description.
      type: str
    create_time:
      description: When vSphere took the snapshot (ISO 8601).
      type: str
    power_state:
      description: Power state of the VM when the snapshot was taken.
      type: str
    quiesced:
      description: Whether the guest was quiesced.
      type: bool
    parent:
      description: Name of the parent snapshot, null for a root snapshot.
      type: str
    parent_moid:
      description: Managed object ID of the parent snapshot.
      type: str
    current:
      description: Whether this is the VM's current snapshot.
      type: bool
    disks:
      description:
        - The virtual disks as the snapshot recorded them, in device key order.
        - Empty for O(state=absent).
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
        uuid:
          description: Disk UUID.
          type: str
        capacity_bytes:
          description: Capacity in bytes.
          type: int
        file:
          description: The backing file the snapshot froze.
          type: str
          sample: "[ds1] app01/app01.vmdk"
        datastore:
          description: Datastore of RV(snapshot.disks[].file).
          type: str
        chain:
          description: Backing files from RV(snapshot.disks[].file) down to the base disk.
          type: list
          elements: str
        change_id:
          description: CBT changeId of the disk as of this snapshot, null when CBT is not active.
          type: str
          sample: "52 1d 0e 4a 8f 55 7c 2b-9e 61 3a 0d 44 e2 b7 19/5"
        mode:
          description: Disk mode.
          type: str
        untrackable:
          description: Why CBT cannot track this disk, or null.
          type: str
        unit:
          description: Unit number on the controller.
          type: int
        controller_key:
          description: Device key of the controller.
          type: int
task:
  description: Managed object ID of the vSphere task started, null when nothing ran.
  returned: always
  type: str
  sample: task-123
still_running:
  description: Set on failure when the task outlived O(task_timeout) and still runs in vSphere.
  returned: failure
  type: bool
'''

from ansible_collections.replicator.vsphere.plugins.module_utils.vsphere.args import (
    vm_identity_argument_spec, vm_identity_params,
)
from ansible_collections.replicator.vsphere.plugins.module_utils.vsphere.errors import NotFound, VsphereError
from ansible_collections.replicator.vsphere.plugins.module_utils.vsphere.lookup import find_vm, vm_summary
from ansible_collections.replicator.vsphere.plugins.module_utils.vsphere.module import run_module, vsphere_module
from ansible_collections.replicator.vsphere.plugins.module_utils.vsphere.properties import fetch
from ansible_collections.replicator.vsphere.plugins.module_utils.vsphere.snapshots import (
    create_snapshot, current_node, find_one, remove_snapshot, revert_snapshot, snapshot_disks, walk,
)

PATHS = ['name', 'config.instanceUuid', 'snapshot']


def argument_spec():
    spec = vm_identity_argument_spec()
    spec.update(
        state=dict(type='str', choices=['present', 'absent', 'reverted'], default='present'),
        snapshot_name=dict(type='str', required=True, aliases=['snapshot']),
        parent_name=dict(type='str'),
        description=dict(type='str', default=''),
        memory=dict(type='bool', default=False),
        quiesce=dict(type='bool', default=False),
        task_timeout=dict(type='int', default=3600),
    )
    return spec


def with_disks(client, node):
    facts = node.facts()
    facts['disks'] = snapshot_disks(client, node.ref)
    return facts


def ensure_present(client, vm, vm_name, nodes, p, check_mode):
    """(changed, snapshot facts, task moid)."""
    node = find_one(nodes, p['snapshot_name'], p['parent_name'], vm_name)
    if node is not None:
        return False, with_disks(client, node), None
    current = current_node(nodes)
    if p['parent_name'] is not None and (current is None or current.name != p['parent_name']):
        raise VsphereError("Snapshot '%s' with parent '%s' does not exist on VM '%s', and a new snapshot would be a "
                           "child of %s" % (p['snapshot_name'], p['parent_name'], vm_name,
                                            "current snapshot '%s'" % current.name if current else 'no snapshot'),
                           fault='InvalidParent',
                           hint='Revert the VM to the parent snapshot first, or drop parent_name.')
    if check_mode:
        return True, {'name': p['snapshot_name'], 'moid': None, 'description': p['description'],
                      'parent': current.name if current else None,
                      'parent_moid': current.moid if current else None, 'current': True, 'disks': []}, None
    ref, task = create_snapshot(client, vm, vm_name, p['snapshot_name'], p['description'], memory=p['memory'],
                                quiesce=p['quiesce'], timeout=p['task_timeout'])
    created = [n for n in walk(fetch(client, vm, ['snapshot'])['snapshot']) if n.moid == ref._moId]
    if not created:
        raise VsphereError("Snapshot '%s' (%s) was created but is not in the snapshot tree of VM '%s'"
                           % (p['snapshot_name'], ref._moId, vm_name), fault='InvalidResponse', task=task)
    return True, with_disks(client, created[0]), task


def ensure_absent(client, vm_name, node, p, check_mode):
    """(changed, snapshot facts, task moid)."""
    if node is None:
        return False, None, None
    snapshot = node.facts()
    snapshot['disks'] = []
    task = None if check_mode else remove_snapshot(client, node.ref, node.name, vm_name, timeout=p['task_timeout'])
    return True, snapshot, task


def ensure_reverted(client, vm_name, nodes, node, p, check_mode):
    """(changed, snapshot facts, task moid)."""
    if node is None:
        parent = " with parent '%s'" % p['parent_name'] if p['parent_name'] else ''
        names = ', '.join(sorted(set(n.name for n in nodes))) or 'none'
        raise NotFound("Snapshot '%s'%s not found on VM '%s' (its snapshots: %s)"
                       % (p['snapshot_name'], parent, vm_name, names), fault='NotFound',
                       hint='Check snapshot_name and parent_name.')
    task = None if check_mode else revert_snapshot(client, node.ref, node.name, vm_name, timeout=p['task_timeout'])
    snapshot = with_disks(client, node)
    snapshot['current'] = True
    return True, snapshot, task


def diff(p, nodes, snapshot):
    """before/after: the snapshot (name, or parent/name) if it exists, and the VM's current snapshot."""
    label = p['snapshot_name'] if not p['parent_name'] else '%s/%s' % (p['parent_name'], p['snapshot_name'])
    current = current_node(nodes)
    before_exists = bool(find_one(nodes, p['snapshot_name'], p['parent_name']))
    before = {'snapshot': label if before_exists else None, 'current': current.name if current else None}
    after = dict(before)
    if p['state'] == 'absent':
        after['snapshot'] = None
        if snapshot is not None and snapshot['current']:
            after['current'] = snapshot['parent']
    elif snapshot is not None:
        after['snapshot'] = label
        if p['state'] == 'reverted' or not before_exists:
            after['current'] = p['snapshot_name']
    return {'before': before, 'after': after}


def main():
    module = vsphere_module(argument_spec(), required_one_of=[('name', 'uuid', 'moid')])
    p = module.params
    if p['task_timeout'] < 0:
        module.fail_json(msg='task_timeout must be 0 or more seconds.')
    identity = vm_identity_params(p)

    def body(client):
        vm = find_vm(client, identity)
        props = fetch(client, vm, PATHS)
        vm_name = props['name']
        nodes = walk(props['snapshot'])
        if p['state'] == 'present':
            changed, snapshot, task = ensure_present(client, vm, vm_name, nodes, p, module.check_mode)
        else:
            node = find_one(nodes, p['snapshot_name'], p['parent_name'], vm_name)
            if p['state'] == 'absent':
                changed, snapshot, task = ensure_absent(client, vm_name, node, p, module.check_mode)
            else:
                changed, snapshot, task = ensure_reverted(client, vm_name, nodes, node, p, module.check_mode)
        result = {'changed': changed, 'vm': vm_summary(vm, props), 'snapshot': snapshot, 'task': task}
        if module._diff:
            result['diff'] = diff(p, nodes, snapshot)
        return result

    run_module(module, body)


if __name__ == '__main__':
    main()
