# -*- coding: utf-8 -*-
# Copyright: (c) 2026, replicator.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""One disk of one VM into its replica: the glue between the control plane and the data mover.

source snapshot disk (API) -> replica disk (replica state on the target) -> committed state of the replica disk
(store on the receiver host) -> plan choice (CBT from the committed changeId, else digests, full on the first
cycle) -> data mover -> the committed changeId written back into the replica's extraConfig.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import contextlib

from ansible_collections.replicator.vsphere.plugins.module_utils.vsphere.datastore_paths import (
    DatastorePathError, local_path,
)
from ansible_collections.replicator.vsphere.plugins.module_utils.datapath.endpoint import EndpointError
from ansible_collections.replicator.vsphere.plugins.module_utils.replica.run_watch import RunWatch
from ansible_collections.replicator.vsphere.plugins.module_utils.hotadd.attach import disk_by_key, hotadd_ends, hotadd_state_dir
from ansible_collections.replicator.vsphere.plugins.module_utils.mover.sender import MoverError, replicate_disk
from ansible_collections.replicator.vsphere.plugins.module_utils.mover.plan_choice import PlanChoiceError, choose_plan
from ansible_collections.replicator.vsphere.plugins.module_utils.receiver.stream import ReceiverError
from ansible_collections.replicator.vsphere.plugins.module_utils.replica.state import decode
from ansible_collections.replicator.vsphere.plugins.module_utils.store.replica_store import ReplicaStoreError, default_state_dir
from ansible_collections.replicator.vsphere.plugins.module_utils.replica.vm import (
    find_replica, refuse_foreign_lock, write_state,
)
from ansible_collections.replicator.vsphere.plugins.module_utils.mover.ssh_transport import (
    SshReceiverSpec, TransportError, run_store_op,
)
from ansible_collections.replicator.vsphere.plugins.module_utils.vsphere.vm_disks import split_datastore_path
from ansible_collections.replicator.vsphere.plugins.module_utils.vsphere.changed_areas import (
    CbtUnavailable, changed_areas,
)
from ansible_collections.replicator.vsphere.plugins.module_utils.vsphere.errors import NotFound, VsphereError
from ansible_collections.replicator.vsphere.plugins.module_utils.vsphere.lookup import vm_summary
from ansible_collections.replicator.vsphere.plugins.module_utils.vsphere.properties import fetch
from ansible_collections.replicator.vsphere.plugins.module_utils.vsphere.snapshots import find_one, snapshot_disks, walk

SOURCE_PATHS = ['name', 'config.instanceUuid', 'snapshot']
SNAPSHOT_PREFIX = 'replicator-'   # the prefix of the snapshots the replicate role takes (snapshot_consolidate's default)
DATA_PATH_ERRORS = (EndpointError, MoverError, ReceiverError, ReplicaStoreError, TransportError, OSError)


class ReplicationError(VsphereError):
    """The disk cannot be replicated as asked (bad mapping, missing replica disk, data path failure)."""


def receiver_spec(receiver):
    """'local', or an SshReceiverSpec for a receiver dict with a host."""
    if not receiver or not receiver.get('host'):
        return 'local'
    return SshReceiverSpec(receiver['host'], user=receiver.get('user'), port=receiver.get('port'),
                           identity_file=receiver.get('identity_file'), python=receiver.get('python') or 'python3',
                           options=receiver.get('ssh_options') or (), config_file=receiver.get('ssh_config'))


def source_snapshot_disk(client, vm, snapshot, disk_key):
    """(vm props, the VM's snapshot tree, snapshot node, disk facts) of `disk_key` as the cycle snapshot froze it."""
    props = fetch(client, vm, SOURCE_PATHS)
    nodes = walk(props['snapshot'])
    node = next((n for n in nodes if n.moid == snapshot), None) or find_one(nodes, snapshot, vm_name=props['name'])
    if node is None:
        raise NotFound("Snapshot '%s' not found on VM '%s'" % (snapshot, props['name']), fault='NotFound',
                       hint='Pass the name or moid that vm_snapshot returned for this cycle.')
    disks = snapshot_disks(client, node.ref)
    disk = next((d for d in disks if d['key'] == disk_key), None)
    if disk is None:
        raise NotFound("VM '%s' has no disk with key %s in snapshot '%s' (disks: %s)"
                       % (props['name'], disk_key, node.name, ', '.join(str(d['key']) for d in disks)),
                       fault='NotFound')
    return props, nodes, node, disk


def leftover_snapshots(nodes, node, prefix=SNAPSHOT_PREFIX):
    """The names of this collection's snapshots above the cycle snapshot `node` in the VM's tree: what makes its
    disks delta chains when an earlier run died before removing its own snapshot."""
    by_moid = dict((n.moid, n) for n in nodes)
    names, parent = [], by_moid.get(node.parent_moid)
    while parent is not None and len(names) < len(nodes):
        if parent.name.startswith(prefix):
            names.append(parent.name)
        parent = by_moid.get(parent.parent_moid)
    return names[::-1]


def refuse_leftovers(nodes, node, vm_name):
    """A cycle snapshot on top of a snapshot that an earlier run left: say so, and what to do (the copy would
    otherwise fail on the delta chain it causes)."""
    left = leftover_snapshots(nodes, node)
    if left:
        raise ReplicationError("VM '%s' still carries %s of an earlier run that ended before removing it, so the "
                               "cycle snapshot '%s' sits on top of it and its disks are delta chains"
                               % (vm_name, ', '.join("snapshot '%s'" % name for name in left), node.name),
                               fault='LeftoverSnapshot',
                               hint='Remove it with replicator.vsphere.snapshot_consolidate: the replicate role does '
                                    'so once it holds the replica lock (lock_run_id); by hand use min_age 0 when no '
                                    'other run of this VM is running.')


def replica_disk(target, source_uuid, disk_key, run_id, now):
    """(replica vm, its props, state, replica disk key, entry) for the source disk; refuses a foreign lock."""
    vm, props, _scanned = find_replica(target, source_uuid)
    if vm is None:
        raise NotFound('No replica of source VM %s on %s' % (source_uuid, target.endpoint), fault='NotFound',
                       hint='Run replica_register first: it creates the replica and its disks.')
    state = decode(props['config.extraConfig'])
    if state.get('state') not in (None, 'ready'):
        raise ReplicationError("Replica '%s' is %s: replication into it is refused until the failover is undone "
                               "or committed" % (props['name'], state.get('state')), fault='InvalidState',
                               hint='Use replica_failover state=undone or state=committed first.')
    refuse_foreign_lock(state, run_id, now, 'Replicating a disk')
    for key, entry in (state.get('disks') or {}).items():
        if entry.get('source_key') == disk_key:
            return vm, props, state, key, entry
    raise NotFound("Replica '%s' has no disk for source disk %s" % (props['name'], disk_key), fault='NotFound',
                   hint='Run replica_register again: it adds replica disks for new source disks.')


COPY_HINT = ('Nothing was committed: the replica keeps its last restore point and changeId. Fix the cause and run '
             'the cycle again.')
COMMIT_UNKNOWN_HINT = ('The whole cycle had been sent when the link to the receiver broke, so the receiver may have '
                       'committed it: the replica holds either its last restore point or this cycle, never a mix. Run '
                       'the cycle again; it continues from what the replica store on the target records.')


@contextlib.contextmanager
def data_path_errors(action, error_class=None, hint=COPY_HINT):
    """Data path failures (endpoints, transport, receiver, store) as a typed error (ReplicationError by default)
    naming the action, the failure class and a hint."""
    try:
        yield
    except DATA_PATH_ERRORS as exc:
        if hint is COPY_HINT and getattr(exc, 'commit_outcome_unknown', False):
            hint = COMMIT_UNKNOWN_HINT
        raise (error_class or ReplicationError)('%s failed: %s' % (action, exc), fault=type(exc).__name__, hint=hint)


def _map(path, mounts, what):
    try:
        return local_path(path, mounts, what)
    except DatastorePathError as exc:
        raise ReplicationError(str(exc), fault='DatastorePathError',
                               hint='Map the datastore in source_datastore_paths / target_datastore_paths.')


def replicate(source, target, vm, opts, now, check_mode):
    """Run one disk cycle. opts: the module's params. Returns the module result."""
    props, nodes, node, disk = source_snapshot_disk(source, vm, opts['snapshot'], opts['disk_key'])
    if opts['transport'] == 'direct':   # reads the flat extent itself: a delta chain under the snapshot stops it
        refuse_leftovers(nodes, node, props['name'])
    rvm, rprops, rstate, rkey, entry = replica_disk(target, props['config.instanceUuid'], disk['key'],
                                                    opts.get('lock_run_id'), now)
    # retention counts the points sealed on the replica VM: partial points of killed runs never push one out
    sealed = [p['id'] for p in rstate.get('points') or [] if p.get('id')]
    # a copy watches the lock only when its run holds it (a module run on its own may go without)
    watched_run = opts.get('lock_run_id') if (rstate.get('lock') or {}).get('run') == opts.get('lock_run_id') else None
    if entry.get('capacity') != disk['capacity_bytes']:
        raise ReplicationError('Replica disk %s is %s bytes but source disk %s is %s bytes' % (
            rkey, entry.get('capacity'), disk['key'], disk['capacity_bytes']), fault='SizeMismatch',
            hint='Run replica_register: it grows replica disks when a source disk grew.')
    if opts['transport'] == 'nbd':
        if not opts.get('source_nbd_uri'):
            raise ReplicationError('transport nbd needs source_nbd_uri (the NBD export of this snapshot disk)',
                                   fault='InvalidArgument')
        source_spec = opts['source_nbd_uri']
    elif opts['transport'] == 'hotadd':
        source_spec = None  # the block device of the snapshot disk on this proxy, known once attached
    else:
        source_spec = _map(disk['file'], opts.get('source_datastore_paths'), 'source snapshot disk')
    rdisk = disk_by_key(rprops['config.hardware.device'], rkey, entry)
    if opts.get('target_transport') == 'hotadd':  # written through the replica disk hot-added to a target proxy
        mapped = _map(entry['file'], opts['target_datastore_paths'], 'replica disk') \
            if split_datastore_path(entry['file'])[0] in (opts.get('target_datastore_paths') or {}) else None
        target_spec, state_dir = None, hotadd_state_dir(rdisk['uuid'], mapped, opts.get('target_state_dir'))
    else:
        target_spec = _map(entry['file'], opts.get('target_datastore_paths'), 'replica disk')
        state_dir = default_state_dir(target_spec)
    receiver = receiver_spec(opts.get('receiver'))
    roots = sorted(set((opts.get('target_datastore_paths') or {}).values()))
    with data_path_errors('Reading the committed state of replica disk %s' % (target_spec or entry['file'])):
        committed = run_store_op(receiver, {'op': 'inspect', 'target': target_spec,
                                            'state_dir': state_dir})['state']
    distrust = None
    if committed.get('change_id') and not entry.get('change_id'):
        distrust = ("the replica's state records no changeId for this disk (forgotten after a failback, or by "
                    "replica_register reset_change_ids)")
    try:
        kind, reason, previous = choose_plan(committed if committed['exists'] else None, disk['change_id'],
                                             disk['capacity_bytes'], opts['plan'], distrust_cbt=distrust)
    except PlanChoiceError as exc:
        raise ReplicationError(str(exc), fault='InvalidArgument')
    extents, qcda_calls = None, 0
    if kind == 'cbt':
        try:
            extents, qcda_calls = changed_areas(vm, node.ref, disk['key'], disk['capacity_bytes'], previous)
        except CbtUnavailable as exc:
            kind, reason, previous = 'digests', 'vSphere cannot answer for changeId %s (%s): comparing block ' \
                                                'digests instead' % (previous, exc.msg), None
    plan = {'kind': kind, 'reason': reason, 'previous_change_id': previous, 'qcda_calls': qcda_calls,
            'changed_areas': len(extents) if extents is not None else None,
            'changed_bytes': sum(length for _start, length in extents) if extents is not None else None}
    result = {'vm': vm_summary(vm, props), 'snapshot': {'name': node.name, 'moid': node.moid},
              'disk': {'key': disk['key'], 'capacity_bytes': disk['capacity_bytes'], 'change_id': disk['change_id'],
                       'source': source_spec},
              'replica': {'name': rprops['name'], 'moid': rvm._moId, 'disk_key': rkey, 'file': entry['file'],
                          'target': target_spec},
              'plan': plan, 'committed_change_id': committed['change_id'], 'restore_point': None, 'stats': {}}
    owners = ({'moid': vm._moId, 'name': props['name']}, {'moid': rvm._moId, 'name': rprops['name']})
    if check_mode:
        result['changed'] = kind != 'cbt' or bool(extents)
        with hotadd_ends(source, target, opts, owners[0], disk, owners[1], rdisk, receiver, check_mode=True) as ends:
            result['hotadd'] = ends.facts()  # the proxies that would be used; nothing is attached
        return result
    dedupe = [{'target': _map(p, opts.get('target_datastore_paths'), 'dedupe source')}
              for p in opts.get('dedupe_sources') or ()]
    with hotadd_ends(source, target, opts, owners[0], disk, owners[1], rdisk, receiver) as ends:  # always detaches
        source_spec, target_spec = ends.source or source_spec, ends.target or target_spec
        result['disk']['source'], result['replica']['target'] = source_spec, target_spec
        watch = RunWatch(opts.get('run_process'), target, rvm, watched_run)
        with data_path_errors('Replicating disk %s of VM %s' % (disk['key'], props['name'])), watch as cancel:
            moved = replicate_disk(source_spec, target_spec, kind, cbt_extents=extents, receiver=receiver,
                                   state_dir=state_dir, change_id=disk['change_id'],
                                   block_size=opts['block_size'], workers=opts['workers'],
                                   compress_level=opts['compression_level'],
                                   bandwidth_mbps=opts['bandwidth_limit'] or 0,
                                   progress_file=opts.get('progress_file'), retention=opts.get('retention'),
                                   sealed_points=sealed,
                                   allowed_roots=(roots + ([ends.target] if ends.target else [])) or None,
                                   cycle_id=opts.get('cycle_id'), dedupe_sources=dedupe,
                                   meta={'vm': props['name'], 'disk_key': disk['key'], 'snapshot': node.name,
                                         'plan': kind, 'reason': reason}, cancel=cancel)
    if ends.attachments:
        result['hotadd'] = ends.facts()
    result['stats'] = moved.stats
    result['restore_point'] = moved.restore_point
    result['committed_change_id'] = moved.committed_change_id

    def change(current):
        stored = (current.get('disks') or {}).get(rkey)
        if stored is None:
            raise ReplicationError("Replica disk %s disappeared from the replica's state during the copy" % rkey,
                                   fault='InvalidState')
        updated = dict(stored, change_id=moved.committed_change_id,
                       last_point=(moved.restore_point or {}).get('id'))
        return {'disks': {rkey: updated}} if updated != stored else {}

    action = "Recording changeId %s on replica '%s'" % (moved.committed_change_id, rprops['name'])
    write_state(target, rvm, change, action, opts['task_timeout'])
    result['changed'] = moved.stats.get('bytes_written', 0) > 0
    return result
