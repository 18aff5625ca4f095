#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, replicator.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
module: cbt_enable
short_description: Enable, disable or reset Changed Block Tracking (CBT) of a VM
version_added: 0.1.0
description:
  - Ensures Changed Block Tracking is on and active (O(state=present)), off (O(state=absent)), or starts it afresh
    (O(state=reset)), as incremental replication needs.
  - On a powered-on VM, enabling takes effect only at the next stun. Unless O(stun=false), the module stuns the
    VM itself with a temporary snapshot that it creates and removes at once. The snapshot name starts with
    O(snapshot_prefix), so M(replicator.vsphere.snapshot_consolidate) removes it if a run dies in between.
  - A reset disables CBT, stuns, enables and stuns again. Use it when changeIds can no longer be trusted.
    The next replication cycle then compares all disk data.
  - Idempotent. CBT on with a changeId on every trackable disk reports no change. On a powered-off VM, CBT on is
    enough, because the next power-on activates it.
author:
  - replicator.vsphere contributors (@replicator-vsphere)
extends_documentation_fragment:
  - replicator.vsphere.connection
  - replicator.vsphere.vm_identity
attributes:
  check_mode:
    support: full
    description: Computes the steps (enable, disable, stun) and reports them without running any.
  diff_mode:
    support: full
    description: Shows whether CBT is enabled and active before and after.
options:
  state:
    description:
      - V(present) enables CBT and activates it.
      - V(absent) disables it.
      - V(reset) disables then enables it, with a stun after each step on a powered-on VM. It always reports a
        change.
    type: str
    choices: [present, absent, reset]
    default: present
  stun:
    description:
      - Stun a powered-on VM with a temporary snapshot (create + remove) so that enabling takes effect now.
      - With V(false), CBT stays pending until the next snapshot or power operation. RV(cbt.pending) says so, and
        the disks have no changeId yet.
    type: bool
    default: true
  untrackable:
    description:
      - What to do with disks CBT cannot track (independent disks, physical-mode RDMs).
      - V(fail) refuses to enable CBT and names the disks.
      - V(skip) enables it for the other disks. The untrackable disks are reported with RV(disks[].skipped=true).
    type: str
    choices: [fail, skip]
    default: fail
  snapshot_prefix:
    description:
      - Name prefix of the temporary stun snapshot.
      - Keep it equal to the O(replicator.vsphere.snapshot_consolidate#module:prefix) used for cleanup.
    type: str
    default: replicator-
  task_timeout:
    description:
      - Seconds to wait for each vSphere task.
      - When a task runs longer the module fails with RV(still_running=true) and the task's moid in RV(task).
      - V(0) does not wait at all.
    type: int
    default: 3600
notes:
  - One of O(name), O(uuid) or O(moid) is required.
  - O(state=absent) does not stun. Tracking stops at once, and vSphere deletes the tracking files at the next
    stun.
'''

EXAMPLES = r'''
- name: Make sure CBT is on and active on app01
  replicator.vsphere.cbt_enable:
    hostname: vcenter.example.com
    username: administrator@vsphere.local
    password: "{{ vcenter_password }}"
    name: app01

- name: Enable CBT but leave activation to the next replication snapshot
  replicator.vsphere.cbt_enable:
    name: db01
    stun: false
    untrackable: skip

- name: Start tracking afresh after a host crash
  replicator.vsphere.cbt_enable:
    moid: vm-42
    state: reset
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
cbt:
  description: CBT state after the run (predicted in check mode).
  returned: always
  type: dict
  contains:
    enabled:
      description: Whether C(changeTrackingEnabled) is set.
      type: bool
    active:
      description: Whether tracking is in effect (every trackable disk has a changeId, or the VM is off).
      type: bool
    pending:
      description: Enabled on a powered-on VM but waiting for a stun.
      type: bool
    powered_on:
      description: Whether the VM runs (powered on or suspended).
      type: bool
disks:
  description:
    - The VM's virtual disks with their CBT status after the run, in device key order.
    - In check mode, the status before the run.
  returned: always
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
    file:
      description: Current backing file.
      type: str
    change_id:
      description: CBT changeId of the current backing, null while tracking is off or pending.
      type: str
    tracked:
      description: Whether the disk has a changeId and CBT is enabled.
      type: bool
    untrackable:
      description: Why CBT cannot track this disk, or null.
      type: str
    skipped:
      description: Whether the disk is untrackable and was skipped (O(untrackable=skip)).
      type: bool
steps:
  description: The steps run, in order (in check mode, the steps that would run).
  returned: always
  type: list
  elements: str
  sample: [enable, stun]
tasks:
  description: The vSphere tasks started, in order, each with its step.
  returned: always
  type: list
  elements: dict
  contains:
    step:
      description: V(enable), V(disable) or V(stun) (a stun has two tasks, snapshot create and remove).
      type: str
    task:
      description: Managed object ID of the task.
      type: str
task:
  description: Managed object ID of the last task started, null when nothing ran.
  returned: always
  type: str
still_running:
  description: Set on failure when a task outlived O(task_timeout) and still runs in vSphere.
  returned: failure
  type: bool
'''

from ansible_collections.replicator.vsphere.plugins.module_utils.vsphere.args import (
    vm_identity_argument_spec, vm_identity_params,
)
from ansible_collections.replicator.vsphere.plugins.module_utils.vsphere.cbt import (
    CBT_PATHS, apply_steps, cbt_state, check_trackable, plan_steps, predicted_state,
)
from ansible_collections.replicator.vsphere.plugins.module_utils.vsphere.lookup import find_vm, vm_summary
from ansible_collections.replicator.vsphere.plugins.module_utils.vsphere.module import run_module, vsphere_module
from ansible_collections.replicator.vsphere.plugins.module_utils.vsphere.properties import fetch


def argument_spec():
    spec = vm_identity_argument_spec()
    spec.update(
        state=dict(type='str', choices=['present', 'absent', 'reset'], default='present'),
        stun=dict(type='bool', default=True),
        untrackable=dict(type='str', choices=['fail', 'skip'], default='fail'),
        snapshot_prefix=dict(type='str', default='replicator-'),
        task_timeout=dict(type='int', default=3600),
    )
    return spec


def summary(state):
    return dict((key, state[key]) for key in ('enabled', 'active', 'pending', 'powered_on'))


def main():
    module = vsphere_module(argument_spec(), required_one_of=[('name', 'uuid', 'moid')])
    p = module.params
    if p['task_timeout'] < 0:
        module.fail_json(msg='task_timeout must be 0 or more seconds.')
    identity = vm_identity_params(p)
    skip = p['untrackable'] == 'skip'

    def body(client):
        vm = find_vm(client, identity)
        props = fetch(client, vm, CBT_PATHS)
        vm_name = props['name']
        before = cbt_state(props, skip)
        if p['state'] != 'absent':
            check_trackable(before, vm_name, p['untrackable'])
        steps = plan_steps(before, p['state'], stun=p['stun'])
        predicted = predicted_state(before, p['state'], steps)
        after, done = before, []
        if steps and not module.check_mode:
            done = apply_steps(client, vm, vm_name, steps, p['snapshot_prefix'], p['task_timeout'])
            after = cbt_state(fetch(client, vm, CBT_PATHS), skip)
        cbt = summary(after)
        if module.check_mode and steps:
            cbt.update(predicted, pending=bool(predicted['enabled'] and not predicted['active']))
        if cbt['pending'] and 'stun' in steps and not module.check_mode:
            module.warn("CBT of VM '%s' is enabled but some disks still have no changeId after the stun." % vm_name)
        elif cbt['pending']:
            module.warn("CBT of VM '%s' is enabled but waits for a stun (next snapshot or power operation)." % vm_name)
        result = {'changed': bool(steps), 'vm': vm_summary(vm, props), 'cbt': cbt, 'disks': after['disks'],
                  'steps': steps, 'tasks': done, 'task': done[-1]['task'] if done else None}
        if module._diff:
            result['diff'] = {'before': {'enabled': before['enabled'], 'active': before['active']},
                              'after': {'enabled': cbt['enabled'], 'active': cbt['active']}}
        return result

    run_module(module, body)


if __name__ == '__main__':
    main()
