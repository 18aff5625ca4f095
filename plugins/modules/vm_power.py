#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, replicator.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
module: vm_power
short_description: Power a VM on, off, or shut its guest down cleanly with a forced power off as fallback
version_added: 0.1.0
description:
  - Brings a VM to O(state=powered_on), O(state=powered_off) (a hard power off), or shuts the guest operating
    system down through VMware Tools (O(state=shutdown_guest)) and waits until the VM is powered off.
  - A guest shutdown that does not finish within O(shutdown_timeout) seconds fails and says the VM is still running,
    unless O(force_after_timeout=true), which then powers the VM off. With O(force_after_timeout=true), a VM whose
    guest cannot be asked (VMware Tools not running, VM suspended) is powered off at once.
  - Idempotent. A VM already in the requested state reports no change. The power state is read in one
    PropertyCollector round trip; the wait for the guest shutdown is pushed by the server, not polled.
author:
  - replicator.vsphere contributors (@replicator-vsphere)
extends_documentation_fragment:
  - replicator.vsphere.connection
  - replicator.vsphere.vm_identity
attributes:
  check_mode:
    support: full
    description: Reads the power state and returns the steps that would run, without running any.
  diff_mode:
    support: full
    description: The power state before and after.
options:
  state:
    description:
      - V(powered_on) powers the VM on (a suspended VM resumes).
      - V(powered_off) powers the VM off at once, like pulling the plug.
      - V(shutdown_guest) asks the guest OS to shut down through VMware Tools and waits for the VM to power off.
    type: str
    choices: [powered_on, powered_off, shutdown_guest]
    required: true
  shutdown_timeout:
    description:
      - For O(state=shutdown_guest), seconds to wait for the guest to power off.
    type: int
    default: 300
  force_after_timeout:
    description:
      - For O(state=shutdown_guest), power the VM off when the guest is still running after O(shutdown_timeout),
        or at once when the guest cannot be asked to shut down (VMware Tools not running, VM suspended).
      - With V(false) the module fails in those cases and leaves the VM running.
    type: bool
    default: false
  task_timeout:
    description: Seconds to wait for each power task.
    type: int
    default: 600
notes:
  - One of O(name), O(uuid) or O(moid) is required.
seealso:
  - module: replicator.vsphere.replica_failover
'''

EXAMPLES = r'''
- name: Shut app01 down cleanly, pull the plug after five minutes
  replicator.vsphere.vm_power:
    hostname: vcenter.example.com
    username: administrator@vsphere.local
    password: "{{ vcenter_password }}"
    name: app01
    state: shutdown_guest
    shutdown_timeout: 300
    force_after_timeout: true

- name: Power the VM back on
  replicator.vsphere.vm_power:
    moid: vm-42
    state: powered_on
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
power_state:
  description: The power state after the run (predicted in check mode).
  returned: always
  type: str
  sample: poweredOff
power_state_before:
  description: The power state before the run.
  returned: always
  type: str
  sample: poweredOn
steps:
  description:
    - What was done in order, of V(shutdown_guest), V(power_off) and V(power_on); in check mode, what would be done.
  returned: always
  type: list
  elements: str
  sample: [shutdown_guest]
forced:
  description: Whether a guest shutdown ended (or in check mode would end) in a hard power off.
  returned: always
  type: bool
shutdown_seconds:
  description: Seconds spent between the guest shutdown request and the VM powering off (or the timeout).
  returned: always
  type: float
task:
  description: Managed object ID of the last power task started, null when none ran.
  returned: always
  type: str
'''

from ansible_collections.replicator.vsphere.plugins.module_utils.vsphere.power import ensure
from ansible_collections.replicator.vsphere.plugins.module_utils.vsphere.args import (
    vm_identity_argument_spec, vm_identity_params,
)
from ansible_collections.replicator.vsphere.plugins.module_utils.vsphere.lookup import find_vm
from ansible_collections.replicator.vsphere.plugins.module_utils.vsphere.module import run_module, vsphere_module


def argument_spec():
    spec = vm_identity_argument_spec()
    spec.update(
        state=dict(type='str', required=True, choices=['powered_on', 'powered_off', 'shutdown_guest']),
        shutdown_timeout=dict(type='int', default=300),
        force_after_timeout=dict(type='bool', default=False),
        task_timeout=dict(type='int', default=600),
    )
    return spec


def main():
    module = vsphere_module(argument_spec(), required_one_of=[('name', 'uuid', 'moid')])
    params = module.params
    if params['shutdown_timeout'] < 0 or params['task_timeout'] < 1:
        module.fail_json(msg='shutdown_timeout must be 0 or more seconds and task_timeout 1 or more.')

    def body(client):
        result = ensure(client, find_vm(client, vm_identity_params(params)), params, module.check_mode)
        if not module._diff:
            result.pop('diff')
        if result['forced'] and not module.check_mode:
            module.warn("VM '%s' was powered off without a clean guest shutdown." % result['vm']['name'])
        return result

    run_module(module, body)


if __name__ == '__main__':
    main()
