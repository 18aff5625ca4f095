# -*- coding: utf-8 -*-
# Copyright: (c) 2026, replicator.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Replication state kept ON the replica VM, in its extraConfig (`replicator.*` keys): pure encode / decode,
the run lock (a lease that expires) and RPO arithmetic. No pyvmomi and no I/O here.

Keys (values are short strings or compact JSON):

  replicator.format            "1"
  replicator.source            {"instance_uuid", "name", "moid", "vcenter"}  identity of the source VM
  replicator.state             ready | failed_over | test_failover | committed
  replicator.lock              {"owner", "run", "acquired", "expires"}   absent when free
  replicator.disk.<key>        {"source_key", "uuid", "capacity", "change_id", "file"} per replica disk
  replicator.points            [{"id", "created", "consistency"}]  restore points, oldest first
  replicator.last_cycle        {"started", "finished", "status", "bytes_sent", ...}
  replicator.failover          {"mode", "point", "point_time", "started", "nics", ...}  the failover in progress

Identity of a replica is `replicator.source.instance_uuid`, never the VM name.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import datetime
import json
import re

from ansible_collections.replicator.vsphere.plugins.module_utils.replica.run_owner import iso

PREFIX = 'replicator.'
FORMAT = '1'
STATES = ('ready', 'failed_over', 'test_failover', 'committed')


class LockHeld(Exception):
    """The replica is locked by another run whose lease has not expired."""

    def __init__(self, lock, now):
        left = int(lock.get('expires', 0) - now)
        owner = lock.get('owner') or 'an unknown host'
        super(LockHeld, self).__init__(
            'Replica is locked by run %s of %s since %s; its lease runs until %s (%ss from now) and is renewed while '
            'that run is alive. Another replication or failover of this VM is running: wait for it to end. A run '
            'that died loses its lock when the lease runs out, or at once when the new run is on the same host.'
            % (lock.get('run'), owner, iso(lock.get('acquired')), iso(lock.get('expires')), max(left, 0)))
        self.lock = lock


def _dump(value):
    return json.dumps(value, sort_keys=True, separators=(',', ':'))


def _load(text, key):
    try:
        return json.loads(text)
    except ValueError:
        raise ValueError('extraConfig key %s%s holds invalid JSON: %r' % (PREFIX, key, text[:80]))


def decode(options):
    """State dict out of extraConfig (an iterable of objects with .key/.value, or (key, value) pairs).

    Returns {} for a VM with no replicator keys, else {'format', 'source', 'state', 'lock', 'disks', 'points',
    'last_cycle', 'failover'} with disks keyed by replica device key (int).
    """
    raw = {}
    for item in options or []:
        key, value = (item if isinstance(item, tuple) else (item.key, item.value))
        if key.startswith(PREFIX) and value not in (None, ''):
            raw[key[len(PREFIX):]] = value
    if not raw:
        return {}
    state = {
        'format': raw.get('format'),
        'source': _load(raw['source'], 'source') if 'source' in raw else {},
        'state': raw.get('state', 'ready'),
        'lock': _load(raw['lock'], 'lock') if 'lock' in raw else None,
        'disks': {},
        'points': _load(raw['points'], 'points') if 'points' in raw else [],
        'last_cycle': _load(raw['last_cycle'], 'last_cycle') if 'last_cycle' in raw else None,
        'failover': _load(raw['failover'], 'failover') if 'failover' in raw else None,
    }
    for key, value in raw.items():
        if key.startswith('disk.'):
            state['disks'][int(key[len('disk.'):])] = _load(value, key)
    return state


def encode(changes):
    """extraConfig (key, value) pairs for the parts of a state dict given in `changes`.

    A value of None removes the key (vSphere deletes an option set to an empty string).
    Keys: source, state, lock, disks ({key: dict or None}), points, last_cycle, failover.
    """
    pairs = [(PREFIX + 'format', FORMAT)]
    for name in ('source', 'lock', 'points', 'last_cycle', 'failover'):
        if name in changes:
            value = changes[name]
            pairs.append((PREFIX + name, '' if value is None else _dump(value)))
    if 'state' in changes:
        if changes['state'] not in STATES:
            raise ValueError('Unknown replica state %r (expected one of %s)' % (changes['state'], ', '.join(STATES)))
        pairs.append((PREFIX + 'state', changes['state']))
    for key, disk in sorted((changes.get('disks') or {}).items()):
        pairs.append((PREFIX + 'disk.%d' % int(key), '' if disk is None else _dump(disk)))
    return pairs


def acquire_lock(current, owner, run, now, ttl, process=None, dead=None):
    """The lock to write for `run`, given the current one. Raises LockHeld when another live lease exists.

    A lease of the same run is renewed; an expired lease of any run is taken over, and so is a lease whose run
    `dead(lock)` proves ended (its ansible-playbook process is gone). process: the run's process identity
    (run_owner.identity()), kept in the lock so that other runs can tell whether it is alive.
    """
    if ttl <= 0:
        raise ValueError('lock ttl must be positive, got %r' % ttl)
    if current and current.get('run') != run and current.get('expires', 0) > now and not (dead and dead(current)):
        raise LockHeld(current, now)
    acquired = current.get('acquired') if current and current.get('run') == run else now
    lock = {'owner': owner, 'run': run, 'acquired': acquired, 'expires': now + ttl}
    if process:
        lock['process'] = dict((k, process[k]) for k in ('host', 'pid', 'boot_id', 'start') if process.get(k))
    elif current and current.get('run') == run and current.get('process'):
        lock['process'] = current['process']
    return lock


def release_allowed(current, run):
    """Whether `run` may release the current lock (its own, or none at all)."""
    return not current or current.get('run') == run


def rpo_status(last_success, rpo_seconds, now):
    """{'rpo_seconds', 'age_seconds', 'met'}: whether the newest restore point is younger than the RPO."""
    if last_success is None:
        return {'rpo_seconds': rpo_seconds, 'age_seconds': None, 'met': False}
    age = max(0, now - last_success)
    return {'rpo_seconds': rpo_seconds, 'age_seconds': age, 'met': age <= rpo_seconds}


_DURATION = re.compile(r'^\s*(\d+(?:\.\d+)?)\s*(s|sec|m|min|h|d)?\s*$', re.IGNORECASE)
_UNIT_SECONDS = {None: 1, 's': 1, 'sec': 1, 'm': 60, 'min': 60, 'h': 3600, 'd': 86400}


def parse_duration(value):
    """Seconds (int) out of 3600, '3600', '90s', '30m', '4h' or '1d'. Raises ValueError for anything else."""
    if isinstance(value, bool):
        raise ValueError('Not a duration: %r' % (value,))
    if isinstance(value, (int, float)):
        seconds = value
    else:
        match = _DURATION.match(str(value or ''))
        if not match:
            raise ValueError("Not a duration: %r (use seconds, or a number with s, m, h or d, like '4h')" % (value,))
        unit = match.group(2).lower() if match.group(2) else None
        seconds = float(match.group(1)) * _UNIT_SECONDS[unit]
    if seconds <= 0:
        raise ValueError('A duration must be positive, got %r' % (value,))
    return int(round(seconds))


def to_epoch(value):
    """Epoch seconds out of a number or an ISO 8601 time ('2026-11-25T07:00:00Z'; naive means UTC); None stays None."""
    if value is None or value == '':
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    text = str(value).strip()
    if text.endswith('Z'):
        text = text[:-1] + '+00:00'
    try:
        moment = datetime.datetime.fromisoformat(text)
    except ValueError:
        raise ValueError('Not a timestamp: %r' % (value,))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.timezone.utc)
    return moment.timestamp()


def last_success(state):
    """Epoch of the newest restore point (its 'created'), else of the last successful cycle's end, else None."""
    times = [to_epoch(point.get('created')) for point in state.get('points') or []]
    cycle = state.get('last_cycle') or {}
    if cycle.get('status') == 'success':
        times.append(to_epoch(cycle.get('finished')))
    times = [moment for moment in times if moment is not None]
    return max(times) if times else None


def lock_status(lock, now):
    """The lock as users see it: its fields plus 'held' (a live lease) and 'expired'; None when free."""
    if not lock:
        return None
    status = dict(lock)
    status['expired'] = lock.get('expires', 0) <= now
    status['held'] = not status['expired']
    return status


def state_facts(state, now, rpo_seconds=None):
    """The replication state of one replica as modules return it (pure: from a decode() result).

    disks are listed by source disk key: [{source_key, key, uuid, capacity_bytes, file, change_id}].
    'rpo' is only present when rpo_seconds is given.
    """
    disks = []
    for key, disk in sorted((state.get('disks') or {}).items()):
        disks.append({'source_key': disk.get('source_key'), 'key': key, 'uuid': disk.get('uuid'),
                      'capacity_bytes': disk.get('capacity'), 'file': disk.get('file'),
                      'change_id': disk.get('change_id')})
    disks.sort(key=lambda disk: (disk['source_key'] is None, disk['source_key'], disk['key']))
    success = last_success(state)
    facts = {
        'source': state.get('source') or {},
        'state': state.get('state'),
        'lock': lock_status(state.get('lock'), now),
        'disks': disks,
        'points': state.get('points') or [],
        'last_cycle': state.get('last_cycle'),
        'failover': state.get('failover'),
        'last_success': success,
    }
    if rpo_seconds is not None:
        facts['rpo'] = rpo_status(success, rpo_seconds, now)
    return facts


def changed_pairs(options, pairs):
    """The (key, value) pairs of `pairs` that would change extraConfig `options` (objects or pairs); a '' value
    changes only a key that is present. The format key alone is no change."""
    current = dict(item if isinstance(item, tuple) else (item.key, item.value) for item in options or [])
    changed = [(key, value) for key, value in pairs
               if (current.get(key) or '') != value]
    if changed == [(PREFIX + 'format', FORMAT)] and any(key.startswith(PREFIX) for key in current):
        return []
    return changed


def merged(options, pairs):
    """extraConfig (key, value) pairs after writing `pairs` onto `options` ('' removes a key), as vSphere does."""
    current = dict(item if isinstance(item, tuple) else (item.key, item.value) for item in options or [])
    for key, value in pairs:
        if value == '':
            current.pop(key, None)
        else:
            current[key] = value
    return sorted(current.items())


CYCLE_STATUSES = ('success', 'failed')


def seal_cycle(state, cycle, retention=None):
    """The extraConfig changes that record a finished replication cycle of the VM: `last_cycle` always, and for a
    successful one a restore point {id, created, consistency} appended to `points` (once per id), the oldest points
    dropped beyond `retention`. cycle: {id, status, started, finished, consistency, bytes_sent, bytes_written,
    error}; times as epoch seconds or ISO 8601."""
    if not cycle:
        return {}
    if not cycle.get('id'):
        raise ValueError('cycle needs an id (the restore point id the disks were committed with)')
    status = cycle.get('status', 'success')
    if status not in CYCLE_STATUSES:
        raise ValueError('cycle status must be one of %s, got %r' % (', '.join(CYCLE_STATUSES), status))
    finished = to_epoch(cycle.get('finished'))
    record = {'id': str(cycle['id']), 'status': status, 'started': to_epoch(cycle.get('started')), 'finished': finished}
    for key in ('consistency', 'bytes_sent', 'bytes_written', 'error'):
        if cycle.get(key) is not None:
            record[key] = cycle[key]
    changes = {}
    if state.get('last_cycle') != record:
        changes['last_cycle'] = record
    points = list(state.get('points') or [])
    if status == 'success' and not any(p.get('id') == record['id'] for p in points):
        created = datetime.datetime.fromtimestamp(finished if finished is not None else 0, datetime.timezone.utc)
        points.append({'id': record['id'], 'created': created.strftime('%Y-%m-%dT%H:%M:%SZ'),
                       'consistency': cycle.get('consistency') or 'crash'})
    if retention:
        points = points[-int(retention):]
    if points != list(state.get('points') or []):
        changes['points'] = points
    return changes


def advertised_points(state, disk_points=None):
    """The restore points of a replica that it offers and a failover accepts, oldest first, as the replica VM lists
    them ({id, created, consistency}): one list for replica_info and replica_failover.

    A point is advertised when it is sealed on the replica VM (`points`: seal_cycle wrote it once the cycle committed
    on every disk); a point a killed run committed on some disks only (partial), or on every disk but never sealed,
    is not. With disk_points ({disk: [{'id', ...}]} as the disk stores list them), only the sealed points committed
    on every disk are. A committed failover keeps the points up to its own (the disks dropped the newer ones).
    """
    points = [dict(p) for p in state.get('points') or [] if p.get('id')]
    failover = state.get('failover') or {}
    ids = [p['id'] for p in points]
    if state.get('state') == 'committed' and failover.get('point') in ids:
        points = points[:ids.index(failover['point']) + 1]
    if disk_points is not None:
        on_disks = [set(p.get('id') for p in listed or []) for listed in disk_points.values()]
        points = [p for p in points if on_disks and all(p['id'] in ids for ids in on_disks)]
    return points
