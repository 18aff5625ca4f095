#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, replicator.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
module: snapshot_consolidate
short_description: Remove snapshots orphaned by failed replication runs and consolidate the VM's disks
version_added: 0.1.0
description:
  - Removes the snapshots that earlier runs of this collection left behind. Only snapshots whose name starts with
    O(prefix) and that are at least O(min_age) seconds old are removed. Snapshots of users never match the prefix
    and are never touched.
  - Then, when vSphere flags the VM with C(runtime.consolidationNeeded), it runs ConsolidateVMDisks_Task.
  - Order is remove, wait for each removal, then consolidate.
  - Ages are measured against the clock of the vCenter or ESXi host that stamped the snapshots.
author:
  - replicator.vsphere contributors (@replicator-vsphere)
extends_documentation_fragment:
  - replicator.vsphere.connection
  - replicator.vsphere.vm_identity
attributes:
  check_mode:
    support: full
    description: Reports the snapshots that would be removed and whether consolidation is needed now.
  diff_mode:
    support: full
    description: Shows the orphaned snapshots and the consolidation flag before and after.
options:
  prefix:
    description:
      - Name prefix of the snapshots this collection creates; only those are ever removed.
      - Must not be empty.
    type: str
    default: replicator-
  min_age:
    description:
      - Minimum age in seconds of a snapshot to be removed, so that a cycle running right now in another job keeps
        its snapshot.
      - V(0) removes all snapshots with O(prefix) whatever their age.
    type: int
    default: 3600
  lock_run_id:
    description:
      - The run that holds the VM's replica lock (M(replicator.vsphere.replica_register) with C(lock=acquire)).
      - No other run can be alive while it does, so every snapshot with O(prefix) except that run's own cycle
        snapshot (O(prefix) followed by the run id) belongs to a run that ended (killed, cancelled, crashed) and
        is removed whatever its age; O(min_age) then does not apply.
    type: str
  consolidate:
    description:
      - Run ConsolidateVMDisks_Task when vSphere says the VM needs it (after the removals).
    type: bool
    default: true
  task_timeout:
    description:
      - Seconds to wait for each vSphere task.
      - When a task runs longer the module fails with RV(still_running=true) and the task's moid in RV(task).
      - V(0) does not wait at all.
    type: int
    default: 3600
notes:
  - One of O(name), O(uuid) or O(moid) is required.
  - Keep O(min_age) above the longest replication cycle, so that a cleanup never removes the snapshot of a cycle
    still running in another job.
'''

EXAMPLES = r'''
- name: Clean up after failed replication runs of app01
  replicator.vsphere.snapshot_consolidate:
    hostname: vcenter.example.com
    username: administrator@vsphere.local
    password: "{{ vcenter_password }}"
    name: app01
  register: cleanup

- name: Remove every replicator snapshot now (no replication job is running)
  replicator.vsphere.snapshot_consolidate:
    moid: vm-42
    min_age: 0

- name: See what would be removed
  replicator.vsphere.snapshot_consolidate:
    name: db01
  check_mode: true
  register: would
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
removed:
  description: The orphaned snapshots removed, deepest first (in check mode, those that would be removed).
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: Snapshot name.
      type: str
    moid:
      description: Managed object ID of the snapshot.
      type: str
    create_time:
      description: When vSphere took it (ISO 8601).
      type: str
    age:
      description: Age in seconds by the server's clock.
      type: float
    parent:
      description: Name of its parent snapshot.
      type: str
    task:
      description: Managed object ID of the removal task (null in check mode).
      type: str
kept:
  description: Names of the snapshots with O(prefix) kept because they are younger than O(min_age).
  returned: always
  type: list
  elements: str
consolidation_needed:
  description: Whether vSphere flagged the VM for consolidation before the consolidation step.
  returned: always
  type: bool
consolidated:
  description: Whether ConsolidateVMDisks_Task ran (in check mode, whether it would run).
  returned: always
  type: bool
tasks:
  description: Managed object IDs of every task started, in order.
  returned: always
  type: list
  elements: str
task:
  description: Managed object ID of the last task started, null when nothing ran.
  returned: always
  type: str
still_running:
  description: Set on failure when a task outlived O(task_timeout) and still runs in vSphere.
  returned: failure
  type: bool
'''

from ansible_collections.replicator.vsphere.plugins.module_utils.vsphere.snapshot_cleanup import (
    age_seconds, ours, select_orphans,
)
from ansible_collections.replicator.vsphere.plugins.module_utils.vsphere.args import (
    vm_identity_argument_spec, vm_identity_params,
)
from ansible_collections.replicator.vsphere.plugins.module_utils.vsphere.lookup import find_vm, vm_summary
from ansible_collections.replicator.vsphere.plugins.module_utils.vsphere.module import run_module, vsphere_module
from ansible_collections.replicator.vsphere.plugins.module_utils.vsphere.properties import fetch
from ansible_collections.replicator.vsphere.plugins.module_utils.vsphere.snapshots import remove_snapshot, walk
from ansible_collections.replicator.vsphere.plugins.module_utils.vsphere.tasks import run_task

PATHS = ['name', 'config.instanceUuid', 'snapshot', 'runtime.consolidationNeeded']


def argument_spec():
    spec = vm_identity_argument_spec()
    spec.update(
        prefix=dict(type='str', default='replicator-'),
        min_age=dict(type='int', default=3600),
        lock_run_id=dict(type='str'),
        consolidate=dict(type='bool', default=True),
        task_timeout=dict(type='int', default=3600),
    )
    return spec


def main():
    module = vsphere_module(argument_spec(), required_one_of=[('name', 'uuid', 'moid')])
    p = module.params
    if p['task_timeout'] < 0:
        module.fail_json(msg='task_timeout must be 0 or more seconds.')
    if not p['prefix']:
        module.fail_json(msg='prefix must not be empty: it is what tells our snapshots from users\' snapshots.')
    if p['min_age'] < 0:
        module.fail_json(msg='min_age must be 0 or more seconds.')
    identity = vm_identity_params(p)

    def body(client):
        vm = find_vm(client, identity)
        props = fetch(client, vm, PATHS)
        vm_name = props['name']
        nodes = walk(props['snapshot'])
        candidates = [n for n in nodes if ours(n.name, p['prefix'])]
        now = client.si.CurrentTime() if candidates and (p['min_age'] > 0 or p['lock_run_id']) else None
        orphans = select_orphans(candidates, p['prefix'], p['min_age'], now, p['lock_run_id'])
        kept = sorted(n.name for n in candidates if n not in orphans)
        removed, tasks = [], []
        for node in orphans:
            facts = node.facts()
            entry = {'name': node.name, 'moid': node.moid, 'create_time': facts['create_time'],
                     'age': age_seconds(node.create_time, now), 'parent': node.parent, 'task': None}
            if not module.check_mode:
                entry['task'] = remove_snapshot(client, node.ref, node.name, vm_name, timeout=p['task_timeout'])
                tasks.append(entry['task'])
            removed.append(entry)
        needed = needed_before = bool(props['runtime.consolidationNeeded'])
        if tasks:  # removals may leave deltas behind: read the flag again
            needed = bool(fetch(client, vm, ['runtime.consolidationNeeded'])['runtime.consolidationNeeded'])
        consolidate = needed and p['consolidate']
        if consolidate and not module.check_mode:
            tasks.append(run_task(client, vm.ConsolidateVMDisks_Task, "Consolidating the disks of VM '%s'" % vm_name,
                                  p['task_timeout'])[1])
        result = {'changed': bool(removed) or consolidate, 'vm': vm_summary(vm, props), 'removed': removed,
                  'kept': kept, 'consolidation_needed': needed, 'consolidated': consolidate, 'tasks': tasks,
                  'task': tasks[-1] if tasks else None}
        if module._diff:
            result['diff'] = {
                'before': {'orphans': [n.name for n in orphans], 'consolidation_needed': needed_before},
                'after': {'orphans': [], 'consolidation_needed': needed and not consolidate},
            }
        return result

    run_module(module, body)


if __name__ == '__main__':
    main()
