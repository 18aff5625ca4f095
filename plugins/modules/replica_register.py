#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, replicator.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
module: replica_register
short_description: Ensure the replica VM of a source VM exists on the DR target, with its replication state and lock
version_added: 0.1.0
description:
  - Creates the replica of a source VM on the target host or cluster when it does not exist yet, with the source's
    hardware (guest OS, CPUs, cores per socket, memory, firmware, disk controllers of the same types on the same
    buses, NICs of the same types) and thin disks of identical capacity on the same controller and unit. The
    replica is created powered off, its NICs disconnected and attached to the target networks given by
    O(network_map).
  - Grows a replica disk when its source disk grew, and adds a replica disk for a new source disk. A source disk
    that shrank, disappeared or was replaced is an error, because the replica must then be rebuilt.
  - Finds the replica by the replication metadata stored on it (the source VM's instance UUID), never by its name.
    A VM that carries the replica's name but does not replicate this source is never adopted or changed.
  - Keeps the replication state in the replica's C(replicator.*) advanced settings (extraConfig) and returns it.
    State writes carry the configuration change version read just before, so concurrent writers cannot lose
    each other's changes.
  - Takes and releases the per-VM run lock, a lease that expires after O(lock_ttl) seconds.
  - With O(state=absent), powers the replica off if needed and destroys it with its files.
  - With O(adopt), an existing powered-off VM of the target with the same disks becomes the replica instead of a
    new one; the first cycle then compares its disks with the source's by digests and sends only the differences.
    Failback uses this to copy a failed-over replica back into the original VM.
  - With O(state=forgotten), drops the replication metadata from the replica and leaves the VM and its disks as
    they are.
  - With O(reset_change_ids), forgets the committed changeId of every replica disk, so that the next cycle of each
    disk compares block digests instead of trusting Changed Block Tracking (after the source's disks were written
    outside CBT, for example by a failback).
author:
  - replicator.vsphere contributors (@replicator-vsphere)
extends_documentation_fragment:
  - replicator.vsphere.connection
  - replicator.vsphere.target_connection
  - replicator.vsphere.vm_identity
attributes:
  check_mode:
    support: full
    description: Reports what would be created, grown, locked or destroyed without changing anything.
  diff_mode:
    support: full
    description: Shows the replica's existence and disk capacities before and after.
options:
  state:
    description:
      - V(present) makes sure the replica exists and follows the source's disks.
      - V(absent) destroys the replica and its files. When the source VM no longer exists, identify it with
        O(uuid) (its instance UUID).
      - V(forgotten) removes every C(replicator.*) setting from the replica (state, lock, restore point list,
        changeIds) and keeps the VM and its disks. The replica's disk stores beside its disks stay; delete the
        C(<disk>.replicator) directories when they are no longer needed.
    type: str
    choices: [present, absent, forgotten]
    default: present
  adopt:
    description:
      - An existing VM of the target to make the replica, instead of creating one. Used once, when the source has
        no replica yet; afterwards the VM is found by its replication metadata like any replica.
      - The VM must be powered off, have no snapshot, carry no replication metadata, and have a disk of the same
        capacity in the same slot (controller type, bus, unit) for every source disk and no other disk.
      - Its disks keep their data. No changeId is recorded, so the first cycle compares them with the source by
        digests (M(replicator.vsphere.disk_replicate) with O(replicator.vsphere.disk_replicate#module:plan=seeded))
        and sends only the blocks that differ.
    type: dict
    suboptions:
      name:
        description: The VM's name on the target (scoped by O(target_datacenter)).
        type: str
      moid:
        description: The VM's managed object ID on the target.
        type: str
  reset_change_ids:
    description:
      - Forget the committed changeId of every replica disk. The next cycle of each disk then compares block
        digests (plan C(digests)) instead of asking CBT what changed, and records a new changeId.
      - Needed when the source's disks were written in a way CBT may not have seen, for example when a failback
        copied the replica back into the source VM.
    type: bool
    default: false
  replica_name:
    description:
      - The name of a replica that is created. Every C({name}) in it is replaced by the source VM's name.
      - Only used when creating; the replica is found again by its replication metadata, whatever its name.
      - Write C({name}) literally; it is not a Jinja2 expression. Inside a Jinja2-templated string write it as
        C({{ '{name}' }}).
    type: str
    default: '{name}_replica'
  target_datacenter:
    description:
      - The datacenter of the target that holds the replica. Needed when the target has more than one.
    type: str
  target_host:
    description:
      - The host the replica is registered on. One of O(target_host) and O(target_cluster) is required to create
        a replica.
    type: str
  target_cluster:
    description:
      - The cluster the replica is registered in.
    type: str
  target_datastore:
    description:
      - The datastore of the replica's files and disks. Required to create a replica.
    type: str
  target_folder:
    description:
      - The VM folder of the replica, relative to the datacenter's VM folder. Default is the VM folder itself.
    type: str
  target_resource_pool:
    description:
      - The resource pool of the replica, below O(target_host) or O(target_cluster). Default is their root pool.
    type: str
  network_map:
    description:
      - Source network name to target network name, for every network the source VM's NICs use.
      - A source network missing here takes O(default_network); without one, the module fails and names it.
    type: dict
    default: {}
  default_network:
    description:
      - The target network of source networks that O(network_map) does not list.
    type: str
  lock:
    description:
      - V(acquire) takes the replica's run lock for O(lock_run_id) (or renews it when that run holds it); it fails
        when another run holds a lease that has not expired, and takes over an expired one, or one whose run
        provably ended (see O(run_process)).
      - A replica created by this call is born locked, so that two first cycles started at the same time make one
        replica; the run that finds the other's replica older destroys its own and is refused by the lock.
      - V(release) frees the lock held by O(lock_run_id). Releasing a lock held by another live run fails.
      - V(none) leaves the lock as it is.
    type: str
    choices: [acquire, release, none]
    default: none
  lock_owner:
    description:
      - Who holds the lock, shown to other runs that find it held.
      - Default is the host and process of O(run_process) when given, else this host's name; plus the AWX /
        Automation Controller job id when E(JOB_ID) is set.
    type: str
  run_process:
    description:
      - The ansible-playbook process of the run that takes the lock, as the C(replicator.vsphere.run_identity)
        lookup returns it (host, pid, boot_id, start). It is kept in the lock, so that a later run on the same
        host takes over at once when that process has ended (killed, cancelled), instead of waiting for the lease.
    type: dict
  lock_run_id:
    description:
      - The id of this replication run. Default is a new random id, returned as RV(run_id); pass it to the
        later steps of the same run and to O(lock=release).
    type: str
  lock_ttl:
    description:
      - Lease time of the lock in seconds; another run may take the lock over once it has expired.
      - A run renews its leases while it is alive (the replicate role's C(replicator.vsphere.run_keeper)), so a
        short lease only bounds how long a run that died unseen (on another host) blocks the VM.
    type: int
    default: 3600
  cycle:
    description:
      - Seal a finished replication cycle in the replica's state, in the same write as the rest (typically with
        O(lock=release) at the end of a cycle). C(last_cycle) is always recorded; a successful cycle adds a restore
        point C({id, created, consistency}) to C(points), once per id. M(replicator.vsphere.replica_info) reports RPO
        from them.
    type: dict
    suboptions:
      id:
        description: The restore point id the disks were committed with (C(cycle_id) of M(replicator.vsphere.disk_replicate)).
        type: str
        required: true
      status:
        description: How the cycle ended.
        type: str
        choices: [success, failed]
        default: success
      started:
        description: Start time, epoch seconds or ISO 8601.
        type: raw
      finished:
        description: End time, epoch seconds or ISO 8601; the restore point's creation time.
        type: raw
      consistency:
        description: How the restore point was made, for example V(application), V(file-system) or V(crash).
        type: str
      bytes_sent:
        description: Bytes sent by the cycle, for the record.
        type: int
      bytes_written:
        description: Bytes written by the cycle, for the record.
        type: int
      error:
        description: Why a failed cycle failed.
        type: str
  retention:
    description:
      - Restore points kept in C(points); the oldest are dropped beyond it (keep it equal to the disks' retention).
    type: int
  task_timeout:
    description:
      - Seconds to wait for each vSphere task (create, reconfigure, power off, destroy).
      - On timeout the module fails and says that the task is still running in vSphere.
    type: int
    default: 3600
notes:
  - The replica's instance UUID is derived from the source's, so it is found with one search call.
  - O(replica_name), O(target_host), O(target_cluster), O(target_datastore), O(target_folder),
    O(target_resource_pool), O(network_map) and O(default_network) are used when the replica is created; an
    existing replica is not moved, renamed or re-networked.
  - The replica gets the target host's default hardware version, new MAC addresses, and no CPU or memory
    reservations of the source.
'''

EXAMPLES = r'''
- name: Ensure the replica of app01 on the DR host and lock it for this run
  replicator.vsphere.replica_register:
    hostname: vcenter.example.com
    username: administrator@vsphere.local
    password: "{{ vcenter_password }}"
    target:
      hostname: dr-esx01.example.com
      username: root
      password: "{{ dr_password }}"
    name: app01
    datacenter: DC1
    target_host: dr-esx01.example.com
    target_datastore: dr-ds1
    network_map:
      VM Network: DR Network
    lock: acquire
  register: replica

- name: Release the lock at the end of the run
  replicator.vsphere.replica_register:
    name: app01
    target_host: dr-esx01.example.com
    target_datastore: dr-ds1
    lock: release
    lock_run_id: "{{ replica.run_id }}"

- name: Failback, first step - adopt the original VM app01 as the replica of its failed-over replica
  replicator.vsphere.replica_register:
    hostname: dr-esx01.example.com
    username: root
    password: "{{ dr_password }}"
    target:
      hostname: vcenter.example.com
      username: administrator@vsphere.local
      password: "{{ vcenter_password }}"
    name: app01_replica
    adopt:
      name: app01
    target_datacenter: DC1

- name: Failback, last step - the original VM stops being a replica
  replicator.vsphere.replica_register:
    hostname: dr-esx01.example.com
    target:
      hostname: vcenter.example.com
    name: app01_replica
    state: forgotten

- name: The next cycle of app01 compares digests instead of trusting CBT
  replicator.vsphere.replica_register:
    name: app01
    reset_change_ids: true

- name: Remove the replica of a VM that was decommissioned
  replicator.vsphere.replica_register:
    uuid: 5003b1c2-8f0a-4f5e-9a61-4c1e2d3b4a59
    state: absent
'''

RETURN = r'''
vm:
  description: The source VM.
  returned: when the source VM exists
  type: dict
  contains:
    name:
      description: Source VM name.
      type: str
    moid:
      description: Source VM managed object ID.
      type: str
    instance_uuid:
      description: Source VM instance UUID, the identity of the replica.
      type: str
replica:
  description: The replica and its replication state; null when there is none.
  returned: always
  type: dict
  contains:
    name:
      description: Replica VM name.
      type: str
    moid:
      description: Replica managed object ID; null in check mode before creation.
      type: str
    instance_uuid:
      description: Replica instance UUID.
      type: str
    datastore:
      description: Datastore of the replica's configuration file.
      type: str
    vmx_path:
      description: Datastore path of the replica's configuration file.
      type: str
      sample: "[dr-ds1] app01_replica/app01_replica.vmx"
    power_state:
      description: Power state of the replica.
      type: str
    source:
      description: The source identity stored on the replica (instance_uuid, name, moid, vcenter).
      type: dict
    state:
      description: V(ready), V(failed_over), V(test_failover) or V(committed).
      type: str
    disks:
      description: Replica disks by source disk.
      type: list
      elements: dict
      contains:
        source_key:
          description: Device key of the source disk.
          type: int
        key:
          description: Device key of the replica disk.
          type: int
        uuid:
          description: Replica disk UUID.
          type: str
        capacity_bytes:
          description: Replica disk capacity.
          type: int
        file:
          description: Replica disk file.
          type: str
        change_id:
          description: The source changeId of the last committed replication of this disk; null before the first.
          type: str
    lock:
      description: The run lock (owner, run, acquired, expires as epoch seconds, held, expired); null when free.
      type: dict
    points:
      description: Restore points, oldest first.
      type: list
      elements: dict
    last_cycle:
      description: Summary of the last replication cycle.
      type: dict
    last_success:
      description: Epoch seconds of the newest restore point; null before the first.
      type: float
run_id:
  description: The run id the lock is held for (O(lock_run_id) or the generated one).
  returned: always
  type: str
actions:
  description: What was done (or would be done in check mode).
  returned: always
  type: list
  elements: str
  sample: ["grow replica disk 2001 to 134217728 bytes", "take the lock for run 6f1c0d until 1795593505"]
'''

import os
import socket
import time
import uuid

from ansible_collections.replicator.vsphere.plugins.module_utils.replica.vm import (
    ensure_absent, ensure_forgotten, ensure_present, target_session,
)
from ansible_collections.replicator.vsphere.plugins.module_utils.replica import run_owner
from ansible_collections.replicator.vsphere.plugins.module_utils.replica.state import seal_cycle
from ansible_collections.replicator.vsphere.plugins.module_utils.vsphere.args import (
    target_connection_argument_spec, vm_identity_argument_spec, vm_identity_params,
)
from ansible_collections.replicator.vsphere.plugins.module_utils.vsphere.errors import NotFound
from ansible_collections.replicator.vsphere.plugins.module_utils.vsphere.lookup import find_vm
from ansible_collections.replicator.vsphere.plugins.module_utils.vsphere.module import run_module, vsphere_module


def default_owner(process=None):
    owner = run_owner.describe(dict(process, id=None)) if process else socket.gethostname()
    if os.environ.get('JOB_ID'):
        owner += ' job %s' % os.environ['JOB_ID']
    return owner


def main():
    spec = vm_identity_argument_spec()
    spec.update(target_connection_argument_spec())
    spec.update(
        state=dict(type='str', default='present', choices=['present', 'absent', 'forgotten']),
        adopt=dict(type='dict', options=dict(name=dict(type='str'), moid=dict(type='str')),
                   mutually_exclusive=[('name', 'moid')], required_one_of=[('name', 'moid')]),
        reset_change_ids=dict(type='bool', default=False),
        replica_name=dict(type='str', default='{name}_replica'),
        target_datacenter=dict(type='str'),
        target_host=dict(type='str'),
        target_cluster=dict(type='str'),
        target_datastore=dict(type='str'),
        target_folder=dict(type='str'),
        target_resource_pool=dict(type='str'),
        network_map=dict(type='dict', default={}),
        default_network=dict(type='str'),
        lock=dict(type='str', default='none', choices=['acquire', 'release', 'none']),
        lock_owner=dict(type='str'),
        run_process=dict(type='dict'),
        lock_run_id=dict(type='str'),
        lock_ttl=dict(type='int', default=3600),
        cycle=dict(type='dict', options=dict(
            id=dict(type='str', required=True),
            status=dict(type='str', choices=['success', 'failed'], default='success'),
            started=dict(type='raw'),
            finished=dict(type='raw'),
            consistency=dict(type='str'),
            bytes_sent=dict(type='int'),
            bytes_written=dict(type='int'),
            error=dict(type='str'),
        )),
        retention=dict(type='int'),
        task_timeout=dict(type='int', default=3600),
    )
    module = vsphere_module(spec, required_one_of=[('name', 'uuid', 'moid')],
                            mutually_exclusive=[('target_host', 'target_cluster')],
                            required_if=[('lock', 'release', ('lock_run_id',))])
    params = module.params
    if params['lock_ttl'] <= 0:
        module.fail_json(msg='lock_ttl must be a positive number of seconds, got %s' % params['lock_ttl'])
    if params['retention'] is not None and params['retention'] < 1:
        module.fail_json(msg='retention must keep at least 1 restore point, got %s' % params['retention'])
    try:
        seal_cycle({}, params['cycle'])
    except ValueError as exc:
        module.fail_json(msg='cycle: %s' % exc)
    opts = dict(params)
    opts['lock_owner'] = params['lock_owner'] or default_owner(params['run_process'])
    opts['lock_process'] = params['run_process']
    opts['lock_run_id'] = params['lock_run_id'] or uuid.uuid4().hex
    opts['network_map'] = dict((str(k), str(v)) for k, v in (params['network_map'] or {}).items())
    identity = vm_identity_params(params)

    def body(source):
        with target_session(source, params) as target:
            now = int(time.time())
            if params['state'] == 'present':
                return ensure_present(source, target, find_vm(source, identity), opts, now, module.check_mode)
            try:
                vm = find_vm(source, identity)
            except NotFound:
                if not (identity['uuid'] and identity['use_instance_uuid'] and not identity['moid']):
                    raise
                vm = None  # the source is gone: its instance UUID still identifies the replica
            if params['state'] == 'forgotten':
                return ensure_forgotten(source, target, vm, identity['uuid'], opts, now, module.check_mode)
            return ensure_absent(source, target, vm, identity['uuid'], opts, now, module.check_mode)

    run_module(module, body)


if __name__ == '__main__':
    main()
