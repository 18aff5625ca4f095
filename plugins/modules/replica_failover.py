#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, replicator.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
module: replica_failover
short_description: Fail over to a replica, test it on an isolated network, undo or commit the failover
version_added: 0.1.0
description:
  - Moves a replica between C(ready), C(failed_over) (or C(test_failover)) and back to C(ready) (undone), or on to
    C(committed). The state is kept on the replica VM, so every run continues where the last one stopped.
  - A failover chooses a restore point (the newest, by id, or the newest at or before a time), rolls each replica
    disk back to it when it is not the newest (keeping a redo journal), takes the VM snapshot C(replicator-failover)
    of the replica so that undo discards what ran, connects the NICs on the mapped networks and powers the replica
    on. A test failover does the same with every NIC on O(test_network) and leaves the source VM untouched.
  - Undo powers the replica off, reverts to and removes the failover snapshot, rolls every disk forward to the
    newest restore point and disconnects the NICs again. Commit removes the failover snapshot keeping what ran and
    makes the chosen point the newest on every disk.
  - Replication into a replica that is failed over is refused until the failover is undone or committed.
  - For an unplanned failover with the source site down, name the replica with O(replica_name) or O(replica_moid)
    and connect to the target only (the connection options, or O(target)). Only a VM carrying replication metadata
    is ever acted on.
author:
  - replicator.vsphere contributors (@replicator-vsphere)
extends_documentation_fragment:
  - replicator.vsphere.connection
  - replicator.vsphere.target_connection
  - replicator.vsphere.receiver
  - replicator.vsphere.vm_identity
attributes:
  check_mode:
    support: full
    description: Reads the replica and its restore points and returns the actions without doing any.
  diff_mode:
    support: full
    description: The replica's state, restore point, power state and failover snapshot before and after.
options:
  state:
    description:
      - V(failed_over) fails over to the replica; V(test) is a test failover on O(test_network).
      - V(undone) returns the replica to C(ready) at the newest restore point, discarding what ran.
      - V(committed) makes a failover permanent.
    type: str
    choices: [failed_over, test, undone, committed]
    required: true
  replica_name:
    description:
      - The replica VM on the target, by name, instead of the source VM identity (unplanned failover).
    type: str
  replica_moid:
    description:
      - The replica VM on the target, by managed object ID, instead of the source VM identity.
    type: str
  target_datacenter:
    description: The target datacenter that scopes the replica lookup and the networks.
    type: str
  restore_point:
    description:
      - V(latest) (the newest), or the id of a restore point.
      - Only the points M(replicator.vsphere.replica_info) lists are accepted - cycles committed on every disk
        (M(replicator.vsphere.disk_replicate) with the same C(cycle_id)) and sealed on the replica
        (M(replicator.vsphere.replica_register) with O(replicator.vsphere.replica_register#module:cycle), as the
        replicate role does at the end of every cycle). A point of a run that ended before every disk committed it,
        or that was never sealed, is refused with the list of the accepted points; O(restore_point_time) and
        O(restore_point_consistency) choose among the accepted points only.
    type: str
    default: latest
  restore_point_time:
    description:
      - Choose the newest restore point created at or before this time (ISO 8601, for example
        V(2026-11-25T07:00:00Z), or epoch seconds).
    type: str
  restore_point_consistency:
    description:
      - Only consider restore points made at least this consistent (the C(consistency) the replicate role records
        on each point, see M(replicator.vsphere.replica_info)). V(application) takes the newest
        application-consistent point (pre-snapshot hooks succeeded and the snapshot was quiesced); V(file-system)
        takes quiesced points, application-consistent ones included; V(any) takes every point.
      - Combines with O(restore_point_time) (the newest such point at or before it) and with an O(restore_point) id
        (which must then be that consistent).
    type: str
    choices: [any, file-system, application]
    default: any
  network_map:
    description:
      - For O(state=failed_over), networks the replica's NICs are on (as registered) mapped to the networks they
        join at failover. NICs on networks not listed keep their network.
    type: dict
    default: {}
  test_network:
    description:
      - For O(state=test), the isolated network every NIC of the replica joins. Required for a test failover.
    type: str
  power_on:
    description: Power the replica on after a failover.
    type: bool
    default: true
  lock_run_id:
    description: A run id whose lock on the replica this run may ignore (its own); a live lock of another run refuses.
    type: str
  task_timeout:
    description: Seconds to wait for each vSphere task.
    type: int
    default: 3600
notes:
  - Give either the source VM identity (O(name), O(uuid) or O(moid)) or O(replica_name) / O(replica_moid).
  - Switching directly between V(failed_over) and V(test) is refused; undo first.
seealso:
  - module: replicator.vsphere.disk_replicate
  - module: replicator.vsphere.replica_info
'''

EXAMPLES = r'''
- name: Test failover of app01 on the isolated network
  replicator.vsphere.replica_failover:
    name: app01
    target:
      hostname: dr-esx01.example.com
    state: test
    test_network: DR Test
    target_datastore_paths:
      nfs-dr-01: /mnt/nfs-dr-01
  delegate_to: proxy-dr-01

- name: Fail over to the newest point before the incident, source site down
  replicator.vsphere.replica_failover:
    hostname: dr-esx01.example.com
    username: root
    password: "{{ dr_password }}"
    replica_name: app01_replica
    state: failed_over
    restore_point_time: "2026-11-25T07:00:00Z"
    network_map:
      VM Network: DR Network
    target_datastore_paths:
      nfs-dr-01: /mnt/nfs-dr-01

- name: Test failover to the newest application-consistent restore point
  replicator.vsphere.replica_failover:
    name: db01
    state: test
    test_network: DR Test
    restore_point_consistency: application
    target_datastore_paths:
      nfs-dr-01: /mnt/nfs-dr-01

- name: Undo the failover (back to replication)
  replicator.vsphere.replica_failover:
    replica_name: app01_replica
    state: undone
    target_datastore_paths:
      nfs-dr-01: /mnt/nfs-dr-01
'''

RETURN = r'''
vm:
  description: The source VM ({name, moid, instance_uuid}); from the replica's metadata when found by replica name.
  returned: always
  type: dict
replica:
  description: The replica (as replica_info returns it), with C(state) and the C(failover) record.
  returned: always
  type: dict
restore_point:
  description:
    - The restore point the replica is at ({id, created}); for undone, the newest point. For a failover also its
      C(consistency) (V(application), V(file-system) or V(crash)).
  returned: always
  type: dict
actions:
  description: What was done, or in check mode would be done, in order.
  returned: always
  type: list
  elements: str
task:
  description: The moid of the last vSphere task started, if any.
  returned: always
  type: str
'''

import time

from ansible_collections.replicator.vsphere.plugins.module_utils.replica.failover import ensure
from ansible_collections.replicator.vsphere.plugins.module_utils.replica.vm import target_session
from ansible_collections.replicator.vsphere.plugins.module_utils.vsphere.args import (
    receiver_argument_spec, target_connection_argument_spec, target_connection_params, vm_identity_argument_spec,
    vm_identity_params,
)
from ansible_collections.replicator.vsphere.plugins.module_utils.vsphere.module import run_module, vsphere_module


def argument_spec():
    spec = vm_identity_argument_spec()
    spec.update(target_connection_argument_spec())
    spec.update(receiver_argument_spec())
    spec.update(
        state=dict(type='str', required=True, choices=['failed_over', 'test', 'undone', 'committed']),
        replica_name=dict(type='str'),
        replica_moid=dict(type='str'),
        target_datacenter=dict(type='str'),
        restore_point=dict(type='str', default='latest'),
        restore_point_time=dict(type='str'),
        restore_point_consistency=dict(type='str', default='any', choices=['any', 'file-system', 'application']),
        network_map=dict(type='dict', default={}),
        test_network=dict(type='str'),
        power_on=dict(type='bool', default=True),
        lock_run_id=dict(type='str'),
        task_timeout=dict(type='int', default=3600),
    )
    return spec


def main():
    module = vsphere_module(argument_spec(),
                            required_one_of=[('name', 'uuid', 'moid', 'replica_name', 'replica_moid')],
                            mutually_exclusive=[('name', 'replica_name'), ('name', 'replica_moid'),
                                                ('uuid', 'replica_name'), ('uuid', 'replica_moid'),
                                                ('moid', 'replica_name'), ('moid', 'replica_moid')],
                            required_if=[('state', 'test', ('test_network',))])
    params = module.params
    opts = dict(params, identity=vm_identity_params(params))
    opts['network_map'] = dict((str(k), str(v)) for k, v in (params['network_map'] or {}).items())
    by_replica = bool(params['replica_name'] or params['replica_moid'])

    def body(client):
        if by_replica:  # the client is the target: the source site may be down
            return ensure(None, client, opts, time.time(), module.check_mode)
        with target_session(client, params) as target:
            return ensure(client, target, opts, time.time(), module.check_mode)

    run_module(module, body, settings=target_connection_params(params) if by_replica else None)


if __name__ == '__main__':
    main()
