#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, replicator.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
module: disk_replicate
short_description: Copy the changed blocks of one VM disk into its replica and commit a restore point
version_added: 0.1.0
description:
  - Runs one replication cycle of one disk. It reads the disk as the cycle snapshot froze it, copies what changed
    since the replica's last committed changeId into the replica disk, verifies every block, journals the old
    content (the previous restore point), and commits the new changeId only once everything is written and flushed.
  - The plan is chosen per disk and returned with the reason. C(full) on the first cycle; C(cbt)
    (QueryChangedDiskAreas since the committed changeId) when the changeId epoch is unchanged; C(digests) (compare
    per-block digests with the replica's digest map) when CBT is off, was reset or cannot answer; C(seeded) when the
    replica has no digest map or the disk size changed.
  - The committed state of the replica disk lives beside it on the target datastore (read on the receiver host);
    its changeId is also recorded in the replica VM's extraConfig. A failed run commits nothing.
  - Run it on the data mover host (proxy) with C(delegate_to); the replica must exist (M(replicator.vsphere.replica_register)).
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
    description: Reads the committed state and the changed areas, returns the plan, and copies nothing.
options:
  snapshot:
    description:
      - The cycle snapshot of the source VM, by moid (as M(replicator.vsphere.vm_snapshot) returns it) or by name.
    type: str
    required: true
  disk_key:
    description:
      - The device key of the source disk, for example V(2000).
    type: int
    required: true
  transport:
    description:
      - How the source disk is read.
      - V(direct) reads the snapshot's flat extent from a datastore mounted on this host (NFS), found through
        O(source_datastore_paths).
      - V(nbd) reads an NBD export of the snapshot disk given by O(source_nbd_uri) (for example nbdkit with the
        VDDK plugin, or qemu-nbd on a VMDK chain).
      - V(hotadd) attaches the snapshot disk read-only (independent non-persistent) to a proxy VM of
        O(source_proxy_pool) through the vSphere API, reads it as the block device named by the disk UUID in
        O(device_dir), and detaches it afterwards, also when the copy failed. Works on VMFS, vSAN and NFS. The
        module must run on the chosen proxy VM (see docs/transports.md).
    type: str
    choices: [direct, nbd, hotadd]
    default: direct
  source_proxy_pool:
    description:
      - Names of the proxy VMs on the source site the snapshot disk may be hot-added to, for O(transport=hotadd).
      - One is chosen per disk; it must be powered on, have C(disk.EnableUUID=TRUE), a free SCSI slot, fewer than
        O(proxy_max_disks) disks hot-added by this collection, run on a host that sees the disk's datastore, and
        not be the source VM itself. The proxy this module runs on is preferred when it qualifies.
    type: list
    elements: str
    default: []
  device_dir:
    description:
      - Where the source proxy shows hot-added disks by UUID (C(wwn-0x<uuid>) or C(scsi-3<uuid>), as udev names
        VMware disks).
    type: path
    default: /dev/disk/by-id
  target_transport:
    description:
      - How the replica disk is written.
      - V(direct) writes the replica's flat file on a datastore mounted on the receiver host, found through
        O(target_datastore_paths).
      - V(hotadd) attaches the replica disk (independent persistent) to a proxy VM of O(target_proxy_pool), writes
        and flushes the block device named by the disk UUID in O(target_device_dir) on the receiver host, and
        detaches it afterwards, also when the copy failed. The receiver must run on the chosen target proxy.
    type: str
    choices: [direct, hotadd]
    default: direct
  target_proxy_pool:
    description:
      - Names of the proxy VMs on the target site the replica disk may be hot-added to, for
        O(target_transport=hotadd); chosen as for O(source_proxy_pool).
    type: list
    elements: str
    default: []
  target_device_dir:
    description:
      - Where the target proxy shows hot-added disks by UUID.
    type: path
    default: /dev/disk/by-id
  target_state_dir:
    description:
      - A directory on the receiver host that keeps each replica disk's digest map and restore-point journals, as
        C(<disk uuid>.replicator), for O(target_transport=hotadd) when the replica datastore is not in
        O(target_datastore_paths) (VMFS, vSAN). With the datastore mapped, the state stays beside the replica disk.
    type: path
  proxy_max_disks:
    description:
      - Disks this collection may have hot-added to one proxy VM at the same time.
    type: int
    default: 4
  device_timeout:
    description:
      - Seconds to wait for a hot-added disk to appear as a device on the proxy.
    type: int
    default: 60
  source_datastore_paths:
    description:
      - Source datastore names mapped to their mount points on this host, for O(transport=direct).
    type: dict
    default: {}
  source_nbd_uri:
    description:
      - The NBD URI of the snapshot disk for O(transport=nbd), C(nbd://host:port/export) or
        C(nbd+unix:///export?socket=/path).
    type: str
  plan:
    description:
      - V(auto) chooses as described above; the other values force a plan (V(cbt) fails when CBT cannot be used).
    type: str
    choices: [auto, full, cbt, digests, seeded]
    default: auto
  block_size:
    description: Transfer and digest block size in bytes (a power of two from 64 KiB to 16 MiB).
    type: int
    default: 1048576
  workers:
    description: Reader / compressor threads.
    type: int
    default: 2
  compression_level:
    description: zstd level for a remote receiver; V(0) sends blocks uncompressed. A local receiver never compresses.
    type: int
    default: 1
  bandwidth_limit:
    description: Upper bound of the transfer rate in MB/s; V(0) for none.
    type: float
    default: 0
  retention:
    description:
      - Restore points to keep on the replica disk; older journals are deleted at the commit. Unset keeps every
        point.
      - Retention counts the points sealed on the replica VM (its C(points), see M(replicator.vsphere.replica_info)).
        The disk keeps the newest O(retention) sealed points, every point between them and the one it commits. A
        point a killed run committed on some disks only is never counted, so it never pushes a sealed point out;
        it stays as a step of the undo chain and goes once it is older than the oldest kept sealed point. Before
        the replica has a sealed point, the newest O(retention) points are kept.
      - Give M(replicator.vsphere.replica_register) the same O(replicator.vsphere.replica_register#module:retention).
    type: int
  proxy_slots:
    description:
      - Disk copies that may run at the same time on this host (the data mover proxy), across all forks, async
        jobs and playbook runs; a copy waits for a free slot up to O(slot_timeout) seconds. V(0) for no limit.
      - Slots are C(flock)ed files in O(proxy_slots_dir); a copy that dies frees its slot with it.
    type: int
    default: 0
  proxy_slots_dir:
    description: The directory of the slot files on this host.
    type: path
    default: /var/tmp/replicator-vsphere/slots
  slot_timeout:
    description: Seconds to wait for a free slot before failing.
    type: int
    default: 3600
  progress_file:
    description:
      - A JSON file this host rewrites with stage, bytes done / total, percent, rate and ETA while copying (at most
        once a second); M(replicator.vsphere.copy_wait) shows it. Its directory is created when missing.
    type: path
  cycle_id:
    description: The restore point id of this cycle (give all disks of a VM the same one); generated when unset.
    type: str
  dedupe_sources:
    description:
      - Datastore paths of other replica disks on the target whose blocks may be reused instead of sent (a VM cloned
        from the same template as an already replicated one).
    type: list
    elements: str
    default: []
  lock_run_id:
    description:
      - The run id that holds the replica's lock (M(replicator.vsphere.replica_register) with C(lock=acquire)).
        A live lock of another run refuses the copy.
      - While this run holds the lock, the copy checks it every 30 seconds and stops when it was released, taken
        over by another run, or its lease ran out (the run stopped renewing it). Nothing of the cycle is committed.
    type: str
  run_process:
    description:
      - The ansible-playbook process of the run (the C(replicator.vsphere.run_identity) lookup). A copy on the
        same host as that process checks it every second and stops as soon as it has ended (the playbook was
        killed or cancelled), so that copies never outlive their run. Nothing of the cycle is committed.
    type: dict
  task_timeout:
    description: Seconds to wait for each vSphere task.
    type: int
    default: 3600
notes:
  - C(changed) is true only when bytes were written to the replica.
  - With hot-add, a run first detaches what a crashed earlier run left attached to the pool's proxies (only disks
    with this collection's marker in the proxy's extraConfig, and only when that run cannot be alive any more).
seealso:
  - module: replicator.vsphere.vm_snapshot
  - module: replicator.vsphere.replica_register
'''

EXAMPLES = r'''
- name: Replicate disk 2000 of app01 into its replica (datastores mounted on the proxy)
  replicator.vsphere.disk_replicate:
    hostname: vcenter.example.com
    username: replicator@vsphere.local
    password: "{{ vcenter_password }}"
    target:
      hostname: dr-vcenter.example.com
    name: app01
    snapshot: "{{ cycle_snapshot.snapshot.moid }}"
    disk_key: 2000
    source_datastore_paths:
      nfs-prod-01: /mnt/nfs-prod-01
    target_datastore_paths:
      nfs-dr-01: /mnt/nfs-dr-01
    cycle_id: "{{ cycle_id }}"
    lock_run_id: "{{ run_id }}"
    retention: 7
  delegate_to: proxy-src-01

- name: Same, with the receiver on the DR proxy over SSH, compressed and throttled
  replicator.vsphere.disk_replicate:
    name: app01
    snapshot: "{{ cycle_snapshot.snapshot.moid }}"
    disk_key: 2000
    source_datastore_paths:
      nfs-prod-01: /mnt/nfs-prod-01
    target_datastore_paths:
      nfs-dr-01: /mnt/nfs-dr-01
    receiver:
      host: proxy-dr-01
      user: replicator
    compression_level: 1
    bandwidth_limit: 50
  delegate_to: proxy-src-01

- name: Hot-add on both sides (VMFS / vSAN datastores), the receiver on the DR proxy VM
  replicator.vsphere.disk_replicate:
    name: app01
    snapshot: "{{ cycle_snapshot.snapshot.moid }}"
    disk_key: 2000
    transport: hotadd
    source_proxy_pool: [proxy-src-01]
    target_transport: hotadd
    target_proxy_pool: [proxy-dr-01]
    target_state_dir: /var/lib/replicator/state
    receiver:
      host: proxy-dr-01
      user: replicator
  delegate_to: proxy-src-01
'''

RETURN = r'''
vm:
  description: The source VM.
  returned: always
  type: dict
  sample: {name: app01, moid: vm-42, instance_uuid: 5003...}
snapshot:
  description: The cycle snapshot read ({name, moid}).
  returned: always
  type: dict
disk:
  description: The source disk as the snapshot froze it ({key, capacity_bytes, change_id, source}).
  returned: always
  type: dict
replica:
  description: The replica VM and disk ({name, moid, disk_key, file, target}).
  returned: always
  type: dict
plan:
  description:
    - The plan used and why ({kind, reason, previous_change_id, qcda_calls, changed_areas, changed_bytes}).
  returned: always
  type: dict
  sample: {kind: cbt, reason: "changed blocks since changeId 52 de .../4", qcda_calls: 1}
committed_change_id:
  description: The changeId committed with the new restore point (in check mode, the one committed before).
  returned: always
  type: str
restore_point:
  description: The restore point this cycle committed on the replica disk ({id, created, change_id, ...}).
  returned: success and not check mode
  type: dict
hotadd:
  description:
    - Per side (C(source), C(target)) the hot-add used ({proxy, proxy_moid, file, uuid, mode, device, attached,
      leftovers_detached}); C(attached) is false after the detach. In check mode, the proxy that would be used.
  returned: when a side uses hot-add
  type: dict
slot:
  description: The copy slot of this proxy held during the copy (O(proxy_slots)) and the seconds spent waiting for it.
  returned: success
  type: dict
  sample: {index: 1, waited_seconds: 0.0}
stats:
  description:
    - Byte counters (bytes_planned, bytes_read, bytes_zero, bytes_deduplicated, bytes_compressed, bytes_sent,
      bytes_written), durations per stage, CPU seconds and peak memory of sender and receiver.
  returned: success and not check mode
  type: dict
'''

import os
import time

from ansible_collections.replicator.vsphere.plugins.module_utils.replica.disk_replication import replicate
from ansible_collections.replicator.vsphere.plugins.module_utils.mover.proxy_slots import ProxySlots, SlotTimeout
from ansible_collections.replicator.vsphere.plugins.module_utils.replica.vm import target_session
from ansible_collections.replicator.vsphere.plugins.module_utils.vsphere.args import (
    receiver_argument_spec, target_connection_argument_spec, vm_identity_argument_spec, vm_identity_params,
)
from ansible_collections.replicator.vsphere.plugins.module_utils.vsphere.lookup import find_vm
from ansible_collections.replicator.vsphere.plugins.module_utils.vsphere.errors import VsphereError
from ansible_collections.replicator.vsphere.plugins.module_utils.vsphere.module import run_module, vsphere_module


def argument_spec():
    spec = vm_identity_argument_spec()
    spec.update(target_connection_argument_spec())
    spec.update(receiver_argument_spec())
    spec.update(
        snapshot=dict(type='str', required=True),
        disk_key=dict(type='int', required=True, no_log=False),
        transport=dict(type='str', choices=['direct', 'nbd', 'hotadd'], default='direct'),
        source_proxy_pool=dict(type='list', elements='str', default=[]),
        device_dir=dict(type='path', default='/dev/disk/by-id'),
        target_transport=dict(type='str', choices=['direct', 'hotadd'], default='direct'),
        target_proxy_pool=dict(type='list', elements='str', default=[]),
        target_device_dir=dict(type='path', default='/dev/disk/by-id'),
        target_state_dir=dict(type='path'),
        proxy_max_disks=dict(type='int', default=4),
        device_timeout=dict(type='int', default=60),
        source_datastore_paths=dict(type='dict', default={}),
        source_nbd_uri=dict(type='str'),
        plan=dict(type='str', choices=['auto', 'full', 'cbt', 'digests', 'seeded'], default='auto'),
        block_size=dict(type='int', default=1048576),
        workers=dict(type='int', default=2),
        compression_level=dict(type='int', default=1),
        bandwidth_limit=dict(type='float', default=0),
        retention=dict(type='int'),
        proxy_slots=dict(type='int', default=0),
        proxy_slots_dir=dict(type='path', default='/var/tmp/replicator-vsphere/slots'),
        slot_timeout=dict(type='int', default=3600),
        progress_file=dict(type='path'),
        cycle_id=dict(type='str'),
        dedupe_sources=dict(type='list', elements='str', default=[]),
        lock_run_id=dict(type='str'),
        run_process=dict(type='dict'),
        task_timeout=dict(type='int', default=3600),
    )
    return spec


def main():
    module = vsphere_module(argument_spec(), required_one_of=[('name', 'uuid', 'moid')],
                            required_if=[('transport', 'nbd', ('source_nbd_uri',)),
                                         ('transport', 'hotadd', ('source_proxy_pool',)),
                                         ('target_transport', 'hotadd', ('target_proxy_pool',))])
    params = module.params
    if params['block_size'] < 65536 or params['block_size'] > 16 << 20 or params['block_size'] & (params['block_size'] - 1):
        module.fail_json(msg='block_size must be a power of two from 65536 to 16777216, got %d'
                         % params['block_size'])
    if params['workers'] < 1 or params['compression_level'] < 0 or params['bandwidth_limit'] < 0:
        module.fail_json(msg='workers must be at least 1, compression_level and bandwidth_limit at least 0')
    if params['proxy_max_disks'] < 1 or params['device_timeout'] < 1:
        module.fail_json(msg='proxy_max_disks and device_timeout must be at least 1')
    if params['retention'] is not None and params['retention'] < 1:
        module.fail_json(msg='retention must keep at least 1 restore point, got %d' % params['retention'])

    if params['proxy_slots'] < 0 or params['slot_timeout'] < 0:
        module.fail_json(msg='proxy_slots and slot_timeout must be 0 or more')
    owner = '%s disk %s' % (params.get('name') or params.get('uuid') or params.get('moid'), params['disk_key'])
    if params['progress_file'] and not module.check_mode:
        folder = os.path.dirname(params['progress_file'])
        try:
            os.makedirs(folder, exist_ok=True)
        except OSError as exc:
            module.fail_json(msg='progress_file: cannot create its directory %s: %s' % (folder, exc.strerror))

    def body(source):
        try:
            with ProxySlots(params['proxy_slots_dir'], 0 if module.check_mode else params['proxy_slots'],
                            timeout=params['slot_timeout'], owner=owner) as slot:
                with target_session(source, params) as target:
                    vm = find_vm(source, vm_identity_params(params))
                    result = replicate(source, target, vm, params, time.time(), module.check_mode)
        except SlotTimeout as exc:
            raise VsphereError(str(exc), fault='SlotTimeout')
        result['slot'] = {'index': slot.index, 'waited_seconds': round(slot.waited, 3)}
        return result

    run_module(module, body)


if __name__ == '__main__':
    main()
