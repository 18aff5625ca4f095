#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, replicator.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
module: replica_info
short_description: Report replicas on the DR target with their replication state, lock and RPO status
version_added: 0.1.0
description:
  - Reports one replica (by its source VM, or by the replica's own name or moid) or every replica on the target,
    with the source it follows, the replica VM, its state, disks with their committed changeIds, restore points,
    the last cycle, the run lock (held or expired) and whether the recovery point objective is met.
  - Only talks to the target. Everything comes from the replication metadata stored on the replicas, so a
    replica is reported even when its source VM or source vCenter is gone.
  - All replicas are read with one container view and one PropertyCollector call; a replica found by its
    source's instance UUID costs one search call and one read.
author:
  - replicator.vsphere contributors (@replicator-vsphere)
extends_documentation_fragment:
  - replicator.vsphere.connection
  - replicator.vsphere.target_connection
attributes:
  check_mode:
    support: full
    description: The module only reads.
options:
  source_uuid:
    description:
      - The instance UUID of the source VM whose replica is wanted (the fastest lookup).
    type: str
  source_name:
    description:
      - The name of the source VM whose replica is wanted, as stored on the replica.
    type: str
  source_moid:
    description:
      - The managed object ID of the source VM whose replica is wanted, as stored on the replica.
    type: str
  replica_name:
    description:
      - The name of the replica VM.
    type: str
  replica_moid:
    description:
      - The managed object ID of the replica VM on the target.
    type: str
  target_datacenter:
    description:
      - Only report replicas in this datacenter of the target.
    type: str
  rpo:
    description:
      - The recovery point objective, as seconds or a number with a unit (V(90s), V(30m), V(4h), V(1d)).
      - When set, each replica reports whether its newest restore point is younger than this.
    type: str
notes:
  - Without any of O(source_uuid), O(source_name), O(source_moid), O(replica_name) and O(replica_moid), every
    replica of the target is reported.
  - The connection options are those of the source site, overridden by O(target), like in
    M(replicator.vsphere.replica_register), so both modules share one C(module_defaults) block.
'''

EXAMPLES = r'''
- name: All replicas on the DR host, with a 4 hour RPO
  replicator.vsphere.replica_info:
    hostname: dr-esx01.example.com
    username: root
    password: "{{ dr_password }}"
    rpo: 4h
  register: replicas

- name: Fail when a replica missed its RPO
  ansible.builtin.assert:
    that: replicas.rpo_missed | length == 0
    fail_msg: "RPO missed by {{ replicas.rpo_missed | join(', ') }}"

- name: The replica of app01
  replicator.vsphere.replica_info:
    source_name: app01
  register: app01
'''

RETURN = r'''
replicas:
  description: The replicas found, sorted by name.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: Replica VM name.
      type: str
    moid:
      description: Replica managed object ID.
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
    power_state:
      description: Power state of the replica.
      type: str
    source:
      description: The source VM it follows (instance_uuid, name, moid, vcenter).
      type: dict
    state:
      description: V(ready), V(failed_over), V(test_failover) or V(committed).
      type: str
    disks:
      description: Replica disks by source disk, with the committed changeIds.
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
          description: The source changeId of the last committed replication; null before the first.
          type: str
    points:
      description:
        - Restore points, oldest first, each C({id, created, consistency}), exactly the points
          M(replicator.vsphere.replica_failover) accepts. A point is listed once its cycle committed it on every
          disk and was sealed on the replica (the replicate role seals at the end of a cycle). A point a killed run
          committed on some disks only is never listed; it stays on those disks as a step of their undo chain until
          retention drops it.
        - After a committed failover, the points up to the committed one.
        - C(consistency) says how the point was made - V(application) (application hooks succeeded and the snapshot
          was quiesced), V(file-system) (quiesced only) or V(crash).
      type: list
      elements: dict
    last_cycle:
      description: Summary of the last replication cycle (times, status, byte counters).
      type: dict
    last_success:
      description: Epoch seconds of the newest restore point; null before the first.
      type: float
    lock:
      description: The run lock (owner, run, acquired, expires, held, expired); null when free.
      type: dict
    proxy_attachments:
      description: The disks of this replica hot-added to a target proxy VM and not detached yet (see below).
      type: list
      elements: dict
    rpo:
      description: C(rpo_seconds), C(age_seconds) of the newest restore point, and C(met).
      type: dict
      returned: when O(rpo) is set
proxy_attachments:
  description:
    - Disks this collection has hot-added to proxy VMs of the target and not detached yet ({proxy, proxy_moid,
      file, owner, owner_name, mode, run, attached}). Empty when no copy runs and no crashed run left a disk
      attached; the next hot-add run detaches leftovers.
    - Each replica also lists the ones of its own disks as C(proxy_attachments).
  returned: always
  type: list
  elements: dict
rpo_missed:
  description: Names of the replicas whose newest restore point is older than O(rpo) (or that have none).
  returned: when O(rpo) is set
  type: list
  elements: str
'''

import time

try:
    from pyVmomi import vim
except ImportError:
    vim = None  # vsphere_module reports the missing library

from ansible_collections.replicator.vsphere.plugins.module_utils.hotadd.attach import attachments_on
from ansible_collections.replicator.vsphere.plugins.module_utils.replica.state import (
    advertised_points, decode, parse_duration,
)
from ansible_collections.replicator.vsphere.plugins.module_utils.replica.vm import (
    INFO_PATHS, find_replica, replica_facts,
)
from ansible_collections.replicator.vsphere.plugins.module_utils.vsphere.args import (
    target_connection_argument_spec, target_connection_params,
)
from ansible_collections.replicator.vsphere.plugins.module_utils.vsphere.errors import NotFound
from ansible_collections.replicator.vsphere.plugins.module_utils.vsphere.lookup import find_datacenter
from ansible_collections.replicator.vsphere.plugins.module_utils.vsphere.module import run_module, vsphere_module
from ansible_collections.replicator.vsphere.plugins.module_utils.vsphere.properties import fetch, find_all


def _wanted(params, vm, props, state):
    source = state.get('source') or {}
    checks = (('source_name', source.get('name')), ('source_moid', source.get('moid')),
              ('replica_name', props.get('name')), ('replica_moid', vm._moId))
    return all(params[option] is None or params[option] == value for option, value in checks)


def main():
    spec = target_connection_argument_spec()
    spec.update(
        source_uuid=dict(type='str'),
        source_name=dict(type='str'),
        source_moid=dict(type='str'),
        replica_name=dict(type='str'),
        replica_moid=dict(type='str'),
        target_datacenter=dict(type='str'),
        rpo=dict(type='str'),
    )
    module = vsphere_module(spec)
    params = module.params
    rpo = None
    if params['rpo'] is not None:
        try:
            rpo = parse_duration(params['rpo'])
        except ValueError as exc:
            module.fail_json(msg='rpo: %s' % exc)

    def body(client):
        now = int(time.time())
        datacenter = find_datacenter(client, params['target_datacenter']) if params['target_datacenter'] else None
        if params['source_uuid']:
            vm, props, _scanned = find_replica(client, params['source_uuid'], datacenter)
            found = [(vm, props)] if vm is not None else []
        elif params['replica_moid']:
            vm = vim.VirtualMachine(params['replica_moid'], client.si._stub)
            try:
                found = [(vm, fetch(client, vm, INFO_PATHS))]
            except NotFound:
                found = []
        else:
            root = fetch(client, datacenter, ['vmFolder'])['vmFolder'] if datacenter is not None else None
            found = find_all(client, vim.VirtualMachine, INFO_PATHS, root=root)
        scanned = found if not (params['source_uuid'] or params['replica_moid']) else \
            find_all(client, vim.VirtualMachine, ['name', 'config.extraConfig'])
        attachments = attachments_on(scanned)
        replicas = []
        for vm, props in found:
            state = decode(props['config.extraConfig'])
            if state.get('source') and _wanted(params, vm, props, state):
                replicas.append(replica_facts(vm, props, state, now, rpo))
                replicas[-1]['points'] = advertised_points(state)   # the points replica_failover accepts
                replicas[-1]['proxy_attachments'] = [a for a in attachments if a['owner'] == vm._moId]
        replicas.sort(key=lambda r: (r['name'] or '', r['moid']))
        result = {'changed': False, 'replicas': replicas, 'proxy_attachments': attachments}
        if rpo is not None:
            result['rpo_missed'] = [r['name'] for r in replicas if not r['rpo']['met']]
        return result

    run_module(module, body, settings=target_connection_params(params))


if __name__ == '__main__':
    main()
