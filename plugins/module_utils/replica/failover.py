# -*- coding: utf-8 -*-
# Copyright: (c) 2026, replicator.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Failover, test failover, undo and commit of a replica: the control-plane steps.

Every step reads what is there before acting, so a run interrupted anywhere is finished by running it again:

  failover / test   refuse a foreign lock -> record the state (failed_over / test_failover, the point, the NICs'
                    networks) so replication into the replica is refused from here on -> roll each disk back to the
                    point (redo journal kept) -> VM snapshot `replicator-failover` -> NICs on the mapped (or test)
                    networks, connected -> power on
  undone            power off -> revert to and remove the failover snapshot (what ran is discarded) -> roll every
                    disk forward to the newest point -> NICs back on their networks, disconnected -> state ready
  committed         remove the failover snapshot keeping what ran -> make the rolled-back point the newest on each
                    disk (newer points dropped) -> state committed
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import time

try:
    from pyVmomi import vim
except ImportError:  # pragma: no cover - the client reports the missing library
    vim = None

from ansible_collections.replicator.vsphere.plugins.module_utils.vsphere.datastore_paths import DatastorePathError, local_path
from ansible_collections.replicator.vsphere.plugins.module_utils.replica.disk_replication import data_path_errors, receiver_spec
from ansible_collections.replicator.vsphere.plugins.module_utils.replica.failover_plan import (
    TARGET_STATES, FailoverPlanError, TransitionRefused, check_transition, choose_point, position,
)
from ansible_collections.replicator.vsphere.plugins.module_utils.replica.spec import network_backing, nic_network, nics
from ansible_collections.replicator.vsphere.plugins.module_utils.replica.state import advertised_points, decode
from ansible_collections.replicator.vsphere.plugins.module_utils.replica.vm import (
    REPLICA_PATHS, NotOurReplica, find_replica, refuse_foreign_lock, replica_facts, resolve_datacenter,
    resolve_networks, source_portgroup_names, write_state,
)
from ansible_collections.replicator.vsphere.plugins.module_utils.mover.ssh_transport import run_store_op
from ansible_collections.replicator.vsphere.plugins.module_utils.store.replica_store import default_state_dir
from ansible_collections.replicator.vsphere.plugins.module_utils.vsphere.errors import NotFound, VsphereError
from ansible_collections.replicator.vsphere.plugins.module_utils.vsphere.lookup import find_datacenter, find_vm, vm_summary
from ansible_collections.replicator.vsphere.plugins.module_utils.vsphere.properties import fetch
from ansible_collections.replicator.vsphere.plugins.module_utils.vsphere.snapshots import (
    create_snapshot, find_one, remove_snapshot, revert_snapshot, walk,
)
from ansible_collections.replicator.vsphere.plugins.module_utils.vsphere.tasks import run_task

FAILOVER_SNAPSHOT = 'replicator-failover'
PATHS = REPLICA_PATHS + ['snapshot', 'network']


STORE_HINT = ('The replica disk stores are on the receiver host: check receiver and target_datastore_paths, then run '
              'again (every step is resumable).')


class FailoverError(VsphereError):
    """The failover step cannot be done as asked."""


def _iso(now):
    return time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(now))


class Replica(object):
    """The replica VM with its properties, decoded state and per-disk store access."""

    def __init__(self, client, vm, source_vm, opts):
        self.client = client
        self.vm = vm
        self.source_vm = source_vm
        self.opts = opts
        self.props = fetch(client, vm, PATHS)
        self.state = decode(self.props['config.extraConfig'])
        self.receiver = receiver_spec(opts.get('receiver'))
        self.roots = sorted(set((opts.get('target_datastore_paths') or {}).values())) or None

    @property
    def name(self):
        return self.props['name']

    def refresh(self):
        self.props = fetch(self.client, self.vm, PATHS)
        self.state = decode(self.props['config.extraConfig'])

    def disks(self):
        """[(replica disk key, store target path)] in source disk order."""
        out = []
        entries = sorted((self.state.get('disks') or {}).items(), key=lambda kv: (kv[1].get('source_key') or 0, kv[0]))
        for key, entry in entries:
            try:
                out.append((key, local_path(entry.get('file'), self.opts.get('target_datastore_paths'),
                                            'replica disk')))
            except DatastorePathError as exc:
                raise FailoverError(str(exc), fault='DatastorePathError',
                                    hint='Map the replica datastore in target_datastore_paths.')
        if not out:
            raise FailoverError("Replica '%s' records no disks" % self.name, fault='InvalidState',
                                hint='Run replica_register and disk_replicate first.')
        return out

    def store_op(self, op, target, **extra):
        request = dict(extra, op=op, target=target, state_dir=default_state_dir(target), allowed_roots=self.roots)
        with data_path_errors('%s of replica disk %s' % (op, target), FailoverError, STORE_HINT):
            return run_store_op(self.receiver, request)

    def inspect(self):
        """{replica disk key: (store target, store_ops summary)}."""
        return dict((key, (target, self.store_op('inspect', target)['state'])) for key, target in self.disks())

    def snapshot(self):
        return find_one(walk(self.props.get('snapshot')), FAILOVER_SNAPSHOT, vm_name=self.name)

    def powered_on(self):
        return str(self.props.get('runtime.powerState')) == 'poweredOn'


def locate(source, target, opts):
    """(vm, source summary or None) of the replica: by the source VM, or by replica_moid / replica_name on the
    target alone (unplanned failover with the source site down); never a VM without replication metadata."""
    datacenter = find_datacenter(target, opts['target_datacenter']) if opts.get('target_datacenter') else None
    if opts.get('replica_moid') or opts.get('replica_name'):
        vm = find_vm(target, {'moid': opts.get('replica_moid'), 'name': opts.get('replica_name'),
                              'datacenter': opts.get('target_datacenter')})
        props = fetch(target, vm, ['name', 'config.extraConfig'])
        stored = (decode(props['config.extraConfig']).get('source') or {})
        if not stored.get('instance_uuid'):
            raise NotOurReplica("VM '%s' (%s) on %s carries no replication metadata (replicator.source); it is not a "
                                "replica and is never failed over" % (props['name'], vm._moId, target.endpoint),
                                fault='NotOurReplica', hint='Name the replica VM that replica_register created.')
        source_vm = dict((k, stored.get(k)) for k in ('name', 'moid', 'instance_uuid'))
        return vm, source_vm
    svm = find_vm(source, opts['identity'])
    sprops = fetch(source, svm, ['name', 'config.instanceUuid'])
    vm, _props, _scanned = find_replica(target, sprops['config.instanceUuid'], datacenter)
    if vm is None:
        raise NotFound("No replica of VM '%s' (%s) on %s" % (sprops['name'], sprops['config.instanceUuid'],
                                                             target.endpoint), fault='NotFound',
                       hint='Register and replicate the VM first (replica_register, disk_replicate).')
    return vm, vm_summary(svm, sprops)


class Run(object):
    """One module run: the actions taken (or, in check mode, that would be), and the last task."""

    def __init__(self, replica, check_mode, timeout):
        self.replica = replica
        self.check_mode = check_mode
        self.timeout = timeout
        self.actions = []
        self.task = None

    def step(self, action, func, task=False):
        """Record `action` and, unless in check mode, do it; task=True: func returns a vSphere task moid."""
        self.actions.append(action)
        if self.check_mode:
            return None
        outcome = func()
        if task:
            self.task = outcome
        return outcome

    def vm_task(self, action, method, **kwargs):
        return self.step(action, lambda: run_task(self.replica.client, method, action, self.timeout, **kwargs)[1],
                         task=True)

    def set_state(self, change, action):
        replica = self.replica
        changed, after = write_state(replica.client, replica.vm, change, "%s of replica '%s'" % (action, replica.name),
                                     self.timeout, check_mode=self.check_mode)
        if changed:
            self.actions.append(action)
        return after


def _nic_networks(replica):
    """{nic key (str): network name} of the replica's NICs now."""
    devices = replica.props['config.hardware.device']
    groups = source_portgroup_names(replica.client, replica.props) if nics(devices) else {}
    return dict((str(nic.key), nic_network(nic, groups)) for nic in nics(devices)), groups


def _nic_spec(replica, wanted, connected):
    """A ConfigSpec for the NICs whose network (wanted: {nic key: name}) or connection differ; None when none do."""
    devices = replica.props['config.hardware.device']
    current, groups = _nic_networks(replica)
    names = sorted(set(name for name in wanted.values() if name))
    folder = fetch(replica.client, resolve_datacenter(replica.client, replica.opts.get('target_datacenter')),
                   ['networkFolder'])['networkFolder']
    resolved = resolve_networks(replica.client, folder, dict((n, n) for n in names)) if names else {}
    changes = []
    for nic in nics(devices):
        name = wanted.get(str(nic.key)) or current[str(nic.key)]
        conn = nic.connectable
        # startConnected only: hosts clear `connected` by themselves on power-off
        same_conn = conn is not None and bool(conn.startConnected) == connected
        if name == nic_network(nic, groups) and same_conn:
            continue
        if name != nic_network(nic, groups):
            nic.backing = network_backing(resolved[name])
        nic.connectable = vim.vm.device.VirtualDevice.ConnectInfo(startConnected=connected, connected=connected,
                                                                  allowGuestControl=True)
        changes.append(vim.vm.device.VirtualDeviceSpec(operation='edit', device=nic))
    return vim.vm.ConfigSpec(deviceChange=changes) if changes else None


def _failover_networks(replica, mode, current):
    """{nic key: network} for a failover: every NIC on test_network for a test, else network_map applied."""
    if mode == 'test_failover':
        return dict((key, replica.opts['test_network']) for key in current)
    mapping = replica.opts.get('network_map') or {}
    return dict((key, mapping.get(name, name)) for key, name in current.items())


def _ids(points):
    return ', '.join(p['id'] for p in points) or 'none'


def accepted_points(state, disk_points, restore_point=None):
    """The points a failover accepts (state.advertised_points: sealed on the replica VM and committed on every disk),
    with the disk stores' lists narrowed to them: (advertised, {disk: [points]}). Raises FailoverPlanError naming why
    when there is none, or when `restore_point` (an id) is on a disk but not accepted (a partial point of a killed
    run, a point never sealed, a sealed point a disk lost)."""
    accepted = advertised_points(state, disk_points)
    ids = set(p['id'] for p in accepted)
    narrowed = dict((key, [p for p in listed or [] if p['id'] in ids]) for key, listed in disk_points.items())
    sealed = [p['id'] for p in state.get('points') or []]
    if restore_point not in (None, 'latest') and restore_point not in ids:
        having = sorted(key for key, listed in disk_points.items() if restore_point in [p['id'] for p in listed or []])
        missing = sorted(key for key in disk_points if key not in having)
        if having or restore_point in sealed:
            if restore_point in sealed and not missing:
                why = 'is newer than the committed failover point %s (dropped when it was committed)' % (
                    (state.get('failover') or {}).get('point'))
            elif restore_point in sealed:
                why = 'is sealed on the replica but missing on disk(s) %s (pruned or lost)' % ', '.join(
                    str(k) for k in missing)
            elif missing:
                why = ('is partial: its cycle committed it on disk(s) %s but not on %s and was never sealed (the run '
                       'ended before every disk committed)'
                       % (', '.join(str(k) for k in having), ', '.join(str(k) for k in missing)))
            else:
                why = 'was committed on every disk but never sealed (its cycle did not finish)'
            raise FailoverPlanError('Restore point %s %s; a failover accepts only the restore points replica_info '
                                    'lists: %s' % (restore_point, why, _ids(accepted)))
    if not accepted:
        detail = '; '.join('disk %s: %s' % (key, _ids(disk_points[key] or [])) for key in sorted(disk_points))
        raise FailoverPlanError('The replica has no complete restore point: none is both sealed on the replica VM '
                                '(sealed: %s) and committed on every disk (%s). A point is complete once a replication '
                                'cycle committed it on every disk and was sealed (replica_register cycle, as the '
                                'replicate role does at its end)' % (', '.join(sealed) or 'none', detail or 'no disks'))
    return accepted, narrowed


def fail_over(replica, wanted, point_opts, run, now):
    """Module states failed_over and test."""
    mode = TARGET_STATES[wanted]
    state = replica.state
    recorded = state.get('failover') or {}
    stores = replica.inspect()
    accepted, narrowed = accepted_points(state, dict((key, summary['restore_points'])
                                                     for key, (_t, summary) in stores.items()),
                                         point_opts['restore_point'])
    labels = dict((p.get('id'), p.get('consistency')) for p in accepted)
    point = choose_point(narrowed, point_opts['restore_point'], point_opts['restore_point_time'],
                         point_opts.get('restore_point_consistency') or 'any', labels)
    check_transition(state.get('state'), wanted, recorded.get('point'), point['id'])
    if mode == 'test_failover' and not replica.opts.get('test_network'):
        raise FailoverError('A test failover needs test_network: the isolated network every NIC joins',
                            fault='InvalidArgument')
    current_nets, _groups = _nic_networks(replica)
    networks = _failover_networks(replica, mode, current_nets)
    spec = _nic_spec(replica, networks, True)  # resolves the networks before anything changes
    record = {'mode': mode, 'point': point['id'], 'point_time': point['created'],
              'started': recorded.get('started') or _iso(now), 'nics': recorded.get('nics') or current_nets}

    def mark(current):
        if current.get('state') == mode and (current.get('failover') or {}).get('point') == point['id']:
            return {}
        return {'state': mode, 'failover': record}
    run.set_state(mark, 'record state %s at restore point %s' % (mode, point['id']))
    snapshot = replica.snapshot()
    for key, (target, summary) in sorted(stores.items()):
        if position(summary) == point['id']:
            continue
        if snapshot is not None:
            raise FailoverError("Replica '%s' has a %s snapshot but disk %s is not at restore point %s"
                                % (replica.name, FAILOVER_SNAPSHOT, key, point['id']), fault='InvalidState',
                                hint='Undo the failover (state=undone), then fail over again.')
        run.step('roll disk %s back to restore point %s (keeping a redo journal)' % (key, point['id']),
                 lambda t=target: replica.store_op('rollback', t, point=point['id'], keep_redo=True))
    if snapshot is None:
        run.step("take snapshot '%s' of the replica" % FAILOVER_SNAPSHOT,
                 lambda: create_snapshot(replica.client, replica.vm, replica.name, FAILOVER_SNAPSHOT,
                                         description='Taken by replica_failover before power-on (point %s); undo '
                                                     'reverts to it' % point['id'], timeout=run.timeout)[1], task=True)
    if spec is not None:
        run.vm_task('connect the NICs on %s' % ', '.join(sorted(set(networks.values()))), replica.vm.ReconfigVM_Task,
                    spec=spec)
    if replica.opts['power_on'] and not replica.powered_on():
        try:
            run.vm_task('power on the replica', replica.vm.PowerOnVM_Task)
        except VsphereError as exc:
            raise FailoverError("Powering on replica '%s' failed: %s" % (replica.name, exc), fault=exc.fault,
                                hint='The replica stays %s at restore point %s: fix the cause and run again, or '
                                     'undo it (state=undone).' % (mode, point['id']), task=exc.task)
    return {'id': point['id'], 'created': point['created'], 'consistency': point.get('consistency')}


def undo(replica, run):
    """Module state undone: back to ready at the newest point, whatever a failover left behind."""
    state = replica.state
    check_transition(state.get('state'), 'undone')
    stores = replica.inspect()
    snapshot = replica.snapshot()
    rolled = [(key, target) for key, (target, summary) in sorted(stores.items()) if summary.get('rolled_back')]
    leftovers = state.get('state') not in (None, 'ready') or snapshot is not None or rolled
    if not leftovers:
        return _newest(stores)
    if replica.powered_on():
        run.vm_task('power off the replica', replica.vm.PowerOffVM_Task)
    if snapshot is not None:
        run.step("revert to snapshot '%s' (discard what ran)" % FAILOVER_SNAPSHOT,
                 lambda: revert_snapshot(replica.client, snapshot.ref, snapshot.name, replica.name, run.timeout),
                 task=True)
        run.step("remove snapshot '%s'" % FAILOVER_SNAPSHOT,
                 lambda: remove_snapshot(replica.client, snapshot.ref, snapshot.name, replica.name, run.timeout),
                 task=True)
    for key, target in rolled:
        run.step('roll disk %s forward to the newest restore point' % key,
                 lambda t=target: replica.store_op('roll_forward', t))
    if not run.check_mode:
        replica.refresh()
    spec = _nic_spec(replica, (state.get('failover') or {}).get('nics') or {}, False)
    if spec is not None:
        run.vm_task('disconnect the NICs (back on their replica networks)', replica.vm.ReconfigVM_Task, spec=spec)
    run.set_state(lambda current: {'state': 'ready', 'failover': None}
                  if current.get('state') != 'ready' or current.get('failover') else {}, 'record state ready')
    return _newest(stores)


def commit(replica, run, now):
    """Module state committed: keep what ran, make the failover point permanent."""
    state = replica.state
    check_transition(state.get('state'), 'committed')
    stores = replica.inspect()
    snapshot = replica.snapshot()
    if snapshot is not None:
        run.step("remove snapshot '%s' keeping what ran" % FAILOVER_SNAPSHOT,
                 lambda: remove_snapshot(replica.client, snapshot.ref, snapshot.name, replica.name, run.timeout),
                 task=True)
    for key, (target, summary) in sorted(stores.items()):
        if summary.get('rolled_back'):
            run.step('make restore point %s the newest of disk %s (newer points dropped)'
                     % (summary['rolled_back'], key), lambda t=target: replica.store_op('commit_rollback', t))
    recorded = dict(state.get('failover') or {})

    def mark(current):
        if current.get('state') == 'committed':
            return {}
        return {'state': 'committed', 'failover': dict(recorded, committed=_iso(now))}
    run.set_state(mark, 'record state committed')
    return {'id': recorded.get('point'), 'created': recorded.get('point_time')}


def _newest(stores):
    points = [p for _key, (_t, summary) in sorted(stores.items()) for p in summary['restore_points'][-1:]]
    return {'id': points[0]['id'], 'created': points[0]['created']} if points else None


def _summary(replica):
    failover = replica.state.get('failover') or {}
    return {'state': replica.state.get('state') or 'ready', 'restore_point': failover.get('point'),
            'power_state': str(replica.props.get('runtime.powerState')),
            'failover_snapshot': replica.snapshot() is not None}


def _planned(before, opts, point):
    """The summary a check-mode run would leave."""
    failing = opts['state'] in ('failed_over', 'test')
    after = dict(before, state=TARGET_STATES[opts['state']], failover_snapshot=failing)
    after['restore_point'] = None if opts['state'] == 'undone' else (point or {}).get('id')
    if failing and opts['power_on']:
        after['power_state'] = 'poweredOn'
    elif opts['state'] == 'undone':
        after['power_state'] = 'poweredOff'
    return after


def ensure(source, target, opts, now, check_mode):
    """The module body: opts are the module params plus `identity` (the source VM identity dict)."""
    vm, source_vm = locate(source, target, opts)
    replica = Replica(target, vm, source_vm, opts)
    refuse_foreign_lock(replica.state, opts.get('lock_run_id'), now, 'Failing over the replica')
    run = Run(replica, check_mode, opts['task_timeout'])
    before = _summary(replica)
    try:
        if opts['state'] in ('failed_over', 'test'):
            point = fail_over(replica, opts['state'], opts, run, now)
        elif opts['state'] == 'undone':
            point = undo(replica, run)
        else:
            point = commit(replica, run, now)
    except TransitionRefused as exc:
        raise FailoverError(str(exc), fault='InvalidState', hint='See replica.state and replica.failover.')
    except FailoverPlanError as exc:
        raise FailoverError(str(exc), fault='RestorePointNotFound',
                            hint='replica_info lists the restore points; each must exist on every disk.')
    if not check_mode and run.actions:
        replica.refresh()
    after = _summary(replica)
    if check_mode and run.actions:
        after = _planned(before, opts, point)
    facts = replica_facts(vm, replica.props, replica.state, now)
    facts['points'] = advertised_points(replica.state)   # what replica_info lists
    result = {'changed': bool(run.actions), 'actions': run.actions, 'task': run.task, 'vm': source_vm,
              'replica': facts, 'restore_point': point}
    if before != after:
        result['diff'] = {'before': before, 'after': after}
    return result
