#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, replicator.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
module: run_keeper
short_description: Keep a run's replica locks alive exactly as long as the run's playbook lives
version_added: 0.2.0
description:
  - Renews the leases of every replica lock that the run O(run_id) holds on the target whenever a third of
    O(lock_ttl) has gone, and returns as soon as the run's ansible-playbook process O(run_process) has ended
    (finished, killed or cancelled) or after O(max_seconds).
  - Meant to run once per run as an async task on the controller (C(delegate_to=localhost), C(async), C(poll=0)),
    as the replicate role does. A run that died then loses its locks within one lease time, its disk copies stop
    (M(replicator.vsphere.disk_replicate) watches the lock) and the next run takes over with no manual step.
  - Only renews a lease the run still holds; a released lock or one another run took over is never taken back.
  - One pass reads the extraConfig of every VM of the target in one PropertyCollector call, every O(interval)
    seconds; a renewal is one reconfiguration of the replica.
author:
  - replicator.vsphere contributors (@replicator-vsphere)
extends_documentation_fragment:
  - replicator.vsphere.connection
  - replicator.vsphere.target_connection
attributes:
  check_mode:
    support: none
    description: The module renews leases until its run ends; it has no dry run.
options:
  run_id:
    description: The run whose leases are kept (C(lock_run_id) of M(replicator.vsphere.replica_register)).
    type: str
    required: true
  run_process:
    description:
      - The run's ansible-playbook process, as the C(replicator.vsphere.run_identity) lookup returns it.
      - It must run on this host; the module fails otherwise.
    type: dict
    required: true
  lock_ttl:
    description: The lease time the run's locks are taken with, in seconds.
    type: int
    default: 300
  interval:
    description: Seconds between two passes over the target's replicas.
    type: int
    default: 30
  max_seconds:
    description: Stop after this many seconds even when the run still lives.
    type: int
    default: 90000
  task_timeout:
    description: Seconds to wait for each reconfiguration of a replica.
    type: int
    default: 600
notes:
  - The connection options are those of the source site, overridden by O(target), like in
    M(replicator.vsphere.replica_register); the keeper only talks to the target.
'''

EXAMPLES = r'''
- name: Fix the identity of this run
  ansible.builtin.set_fact:
    run: "{{ lookup('replicator.vsphere.run_identity') }}"
  run_once: true

- name: Keep the run's replica locks alive while the playbook runs
  replicator.vsphere.run_keeper:
    target: "{{ dr_connection }}"
    run_id: "{{ run.id }}"
    run_process: "{{ run }}"
    lock_ttl: 300
  delegate_to: localhost
  run_once: true
  async: 90000
  poll: 0
'''

RETURN = r'''
renewals:
  description: How many lease renewals were written.
  returned: success
  type: int
replicas:
  description: The names of the replicas whose leases were renewed.
  returned: success
  type: list
  elements: str
ended:
  description: Why the keeper returned (C(the run ended) or C(max_seconds passed)).
  returned: success
  type: str
'''

from ansible_collections.replicator.vsphere.plugins.module_utils.replica.keeper import keep
from ansible_collections.replicator.vsphere.plugins.module_utils.vsphere.args import (
    target_connection_argument_spec, target_connection_params,
)
from ansible_collections.replicator.vsphere.plugins.module_utils.vsphere.client import connect
from ansible_collections.replicator.vsphere.plugins.module_utils.vsphere.module import run_module, vsphere_module


def main():
    spec = target_connection_argument_spec()
    spec.update(
        run_id=dict(type='str', required=True),
        run_process=dict(type='dict', required=True),
        lock_ttl=dict(type='int', default=300),
        interval=dict(type='int', default=30),
        max_seconds=dict(type='int', default=90000),
        task_timeout=dict(type='int', default=600),
    )
    module = vsphere_module(spec, supports_check_mode=False)
    params = module.params
    for name in ('lock_ttl', 'interval', 'max_seconds'):
        if params[name] <= 0:
            module.fail_json(msg='%s must be a positive number of seconds, got %s' % (name, params[name]))
    settings = target_connection_params(params)

    def body(client):
        result = keep(client, lambda: connect(settings), params['run_id'], params['run_process'], params['lock_ttl'],
                      min(params['interval'], max(1, params['lock_ttl'] // 3)), params['max_seconds'],
                      params['task_timeout'])
        result['changed'] = result['renewals'] > 0
        return result

    run_module(module, body, settings)


if __name__ == '__main__':
    main()
