# -*- coding: utf-8 -*-
# Copyright: (c) 2026, replicator.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Replica state store: manifest, digest map, cycles, restore points, recovery, rollback and retention.

One ReplicaStore per replica disk, in a state directory beside it. The manifest (manifest.json, previous generation
in manifest.json.prev) is the single source of truth: every step that changes the target or the set of journals is
first announced in a new manifest generation (open cycle, pending rollback / roll forward), so a process killed at
any moment leaves a manifest that says what to finish or undo. See docs/restore-points.md.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import copy
import errno
import fcntl
import hashlib
import json
import os
import re
import time

from ansible_collections.replicator.vsphere.plugins.module_utils.datapath.endpoint import EndpointError
from ansible_collections.replicator.vsphere.plugins.module_utils.store.journal import (
    JournalError, JournalReader, JournalWriter, fsync_dir, replay,
)

MANIFEST = 'manifest.json'
MANIFEST_PREV = 'manifest.json.prev'
LOCK_FILE = 'lock'
LOCK_WAIT = 20.0            # seconds a store operation waits for another process's lock on the same store
FORMAT = 1
MIN_BLOCK = 64 * 1024
MAX_BLOCK = 16 * 1024 * 1024
_ID_RE = re.compile(r'^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$')
_OWNED_RE = re.compile(r'^(journal-.+\.rvj|redo-\d+\.rvj|digests-\d+\.bin|.+\.tmp)$')


def _write_holder(fd):
    """Say in the lock file who holds it (what a refused process shows); the flock is what locks."""
    try:
        since = time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())
        text = ('pid %d on %s since %s\n' % (os.getpid(), os.uname()[1], since)).encode()
        os.ftruncate(fd, 0)
        os.pwrite(fd, text, 0)
    except OSError:
        pass


def _read_holder(fd):
    try:
        return os.pread(fd, 256, 0).decode('utf-8', 'replace').strip() or 'another process'
    except OSError:
        return 'another process'


_REQUIRED = ('format', 'generation', 'change_id', 'capacity', 'block_size', 'restore_points', 'meta')


class ReplicaStoreError(Exception):
    """What is wrong with the replica state and what to do about it."""


def default_state_dir(target):
    """The store directory of a replica disk given as a path or file:// URI: beside it, `<disk>.replicator`.
    Other targets (NBD) have no "beside": their state_dir must be given."""
    if '://' in target and not target.startswith('file://'):
        raise ReplicaStoreError('a state_dir is required for target %s (it is not a local file)' % target)
    path = target[len('file://'):] if target.startswith('file://') else target
    return path + '.replicator'


def _now():
    return time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())


def _doc_checksum(doc):
    body = dict((k, v) for k, v in doc.items() if k != 'checksum')
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(',', ':')).encode('utf-8')).hexdigest()


def atomic_write(path, data):
    """Write data to path via tmp file + fsync + rename + directory fsync."""
    tmp = path + '.tmp'
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        view = memoryview(data)
        while len(view):
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    fsync_dir(path)


def prune_start(ids, keep, sealed=None):
    """Index of the oldest restore point that retention keeps; ids: the point ids oldest first, the last one the
    point just committed (always kept).

    Without `sealed` (a plain number, as the mover's own callers and failback give it): the newest `keep` points.
    With `sealed` (the ids the replica VM lists as sealed: cycles that committed on every disk): the newest `keep`
    sealed points are kept, counting the last point when it is sealed already, and every point between them (an
    unsealed point in the middle is still a step of the undo chain to the older ones). So a partial point (a run
    killed after some disks committed it) never pushes a sealed point out, and at a commit, before its seal, every
    point the VM lists stays on the disk (the VM drops its oldest one when it seals the new one; the disk at its
    next commit). Partial points older than the oldest kept sealed one go. When no older point is sealed, the plain
    count applies (no sealed point can be lost).
    """
    if not isinstance(keep, int) or isinstance(keep, bool) or keep < 1:
        raise ReplicaStoreError('retention must be an integer >= 1 (got %r)' % (keep,))
    ids = list(ids)
    count = max(0, len(ids) - keep)
    if sealed is None or not ids:
        return count
    sealed = set(sealed)
    older = ids[:-1]
    wanted = keep - 1 if ids[-1] in sealed else keep
    window = [i for i in older if i in sealed][-wanted:] if wanted else []
    if not window:
        return count
    return older.index(window[0])


def parse_manifest(raw):
    """Parse and verify manifest bytes; returns the dict or raises ValueError saying what is wrong."""
    doc = json.loads(raw.decode('utf-8'))
    if not isinstance(doc, dict):
        raise ValueError('not a JSON object')
    missing = [k for k in _REQUIRED if k not in doc]
    if missing:
        raise ValueError('missing keys %s' % ', '.join(missing))
    if doc['format'] != FORMAT:
        raise ValueError('unsupported format %r (this version reads format %d)' % (doc['format'], FORMAT))
    if doc.get('checksum') != _doc_checksum(doc):
        raise ValueError('checksum mismatch')
    return doc


def _guarded(what):
    """Turn target / journal I/O failures of a recovery operation into a ReplicaStoreError saying what to do."""
    def wrap(func):
        def run(self, *args, **kwargs):
            try:
                return func(self, *args, **kwargs)
            except (EndpointError, JournalError, OSError) as e:
                raise ReplicaStoreError('%s failed: %s; the manifest in %s records what is unfinished: fix the cause '
                                        'and call recover(target) again' % (what, e, self.state_dir))
        run.__doc__ = func.__doc__
        run.__name__ = func.__name__
        return run
    return wrap


class ReplicaStore(object):
    """Restore points and replication state of one replica disk (see the module docstring)."""

    def __init__(self, state_dir):
        self.state_dir = os.path.abspath(state_dir)
        self.warnings = []
        self._doc = None
        self._raw = None
        self._lock_fd = None
        self._lock_depth = 0

    # ---- paths, lock, manifest I/O ---------------------------------------------------------------------------

    def _path(self, name):
        return os.path.join(self.state_dir, name)

    def _ensure_dir(self):
        if not os.path.isdir(self.state_dir):
            parent = os.path.dirname(self.state_dir)
            if not os.path.isdir(parent):
                raise ReplicaStoreError('state directory %s cannot be created: its parent %s does not exist (is the '
                                        'replica disk directory mounted?)' % (self.state_dir, parent))
            try:
                os.mkdir(self.state_dir, 0o700)
            except OSError as e:
                if e.errno != errno.EEXIST:
                    raise ReplicaStoreError('cannot create state directory %s: %s; check permissions of %s'
                                            % (self.state_dir, e.strerror, parent))
        if not os.access(self.state_dir, os.W_OK | os.X_OK):
            raise ReplicaStoreError('state directory %s is not writable by uid %d: fix its ownership/permissions'
                                    % (self.state_dir, os.getuid()))

    def _lock(self):
        if self._lock_depth == 0:
            self._ensure_dir()
            fd = os.open(self._path(LOCK_FILE), os.O_RDWR | os.O_CREAT, 0o600)
            # a copy of a run that ended stops within seconds (run_watch): wait that long before refusing
            deadline = time.monotonic() + LOCK_WAIT
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except (IOError, OSError):
                    if time.monotonic() < deadline:
                        time.sleep(0.2)
                        continue
                    holder = _read_holder(fd)
                    os.close(fd)
                    raise ReplicaStoreError('state directory %s is in use by %s (it holds %s); wait for that '
                                            'replication or rollback of this disk to finish'
                                            % (self.state_dir, holder, LOCK_FILE))
            _write_holder(fd)
            self._lock_fd = fd
        self._lock_depth += 1

    def _unlock(self):
        self._lock_depth -= 1
        if self._lock_depth == 0 and self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def _read(self):
        """Load the newest valid manifest (falling back to the previous generation). Returns dict or None."""
        self._doc = self._raw = None
        if not os.path.isdir(self.state_dir):
            return None
        problems = []
        for name in (MANIFEST, MANIFEST_PREV):
            try:
                with open(self._path(name), 'rb') as f:
                    raw = f.read()
            except IOError as e:
                if e.errno != errno.ENOENT:
                    raise ReplicaStoreError('cannot read %s: %s' % (self._path(name), e))
                continue
            try:
                doc = parse_manifest(raw)
            except ValueError as e:
                problems.append('%s: %s' % (name, e))
                continue
            if problems or name == MANIFEST_PREV:
                self.warnings.append('%s is missing or corrupt (%s); using the previous generation %d from %s'
                                     % (MANIFEST, '; '.join(problems) or 'missing', doc['generation'], name))
            self._doc, self._raw = doc, raw
            return doc
        if problems:
            raise ReplicaStoreError('replica state in %s is corrupt (%s): restore %s from a backup, or move the '
                                    'state directory away to re-seed the replica with a full copy'
                                    % (self.state_dir, '; '.join(problems), MANIFEST))
        return None

    def _write(self, doc):
        """Write doc as the next manifest generation (previous one kept as manifest.json.prev)."""
        doc = copy.deepcopy(doc)
        doc['format'] = FORMAT
        doc['generation'] = (self._doc['generation'] if self._doc else 0) + 1
        doc.pop('checksum', None)
        doc['checksum'] = _doc_checksum(doc)
        raw = json.dumps(doc, sort_keys=True, indent=1).encode('utf-8')
        if self._raw is not None:
            atomic_write(self._path(MANIFEST_PREV), self._raw)
        atomic_write(self._path(MANIFEST), raw)
        self._doc, self._raw = doc, raw
        return doc

    def _cleanup(self, actions):
        """Delete files the current manifest (and the previous one's digest map) no longer reference."""
        doc = self._doc or {}
        keep = set(p['journal'] for p in doc.get('restore_points', []) if p.get('journal'))
        for part in ('open_cycle', 'rolled_back', 'pending'):
            for key in ('journal', 'redo'):
                if (doc.get(part) or {}).get(key):
                    keep.add(doc[part][key])
        for raw in (self._raw, self._prev_raw()):
            try:
                keep.add(parse_manifest(raw)['digest_map']['file'])
            except (ValueError, TypeError, KeyError, AttributeError):
                pass
        removed = False
        for name in sorted(os.listdir(self.state_dir)):
            if _OWNED_RE.match(name) and name not in keep:
                os.unlink(self._path(name))
                actions.append('removed unreferenced %s' % name)
                removed = True
        if removed:
            fsync_dir(self._path(MANIFEST))

    def _prev_raw(self):
        try:
            with open(self._path(MANIFEST_PREV), 'rb') as f:
                return f.read()
        except IOError:
            return None

    # ---- public read API -------------------------------------------------------------------------------------

    def load(self):
        """Return the committed manifest (dict) or None when nothing was ever committed here."""
        return copy.deepcopy(self._read())

    def read_digest_map(self):
        """Return the digest map blob committed with the manifest, or None."""
        doc = self._read()
        ref = (doc or {}).get('digest_map')
        if not ref:
            return None
        path = self._path(ref['file'])
        try:
            with open(path, 'rb') as f:
                blob = f.read()
        except IOError as e:
            raise ReplicaStoreError('digest map %s is unreadable (%s): run a full digest comparison cycle' % (path, e))
        if len(blob) != ref['size'] or hashlib.sha256(blob).hexdigest() != ref['sha256']:
            raise ReplicaStoreError('digest map %s is corrupt (size/checksum mismatch): run a full digest comparison '
                                    'cycle' % path)
        return blob

    # ---- checks ----------------------------------------------------------------------------------------------

    def _need(self, doc, target=None, allow_rolled_back=True, grown_ok=False):
        if doc is None:
            raise ReplicaStoreError('no replica state in %s: nothing has been replicated to this disk yet'
                                    % self.state_dir)
        oc = doc.get('open_cycle')
        if oc:
            raise ReplicaStoreError('cycle %s (started %s) was never committed: call recover(target) first'
                                    % (oc['id'], oc['started']))
        if not allow_rolled_back and doc.get('rolled_back'):
            raise ReplicaStoreError('the replica is rolled back to restore point %s (failover / test): replication '
                                    'into it is refused until roll_forward() undoes it or commit_rollback() makes '
                                    'that point the newest' % doc['rolled_back']['point'])
        if target is not None:
            self._check_capacity(doc, target, grown_ok)

    @staticmethod
    def _check_capacity(doc, target, grown_ok=False):
        """The target must have the recorded capacity; with grown_ok it may be larger (the source disk grew and the
        replica disk was grown to match: a new cycle records the new capacity, older points keep their bytes)."""
        if grown_ok and doc['capacity'] is not None and target.size > doc['capacity']:
            return
        if doc['capacity'] is not None and target.size != doc['capacity']:
            raise ReplicaStoreError('capacity mismatch: target %s is %d bytes but the replica state records %d; '
                                    'resize the replica disk to match (or re-seed it)'
                                    % (getattr(target, 'name', ''), target.size, doc['capacity']))

    def _index(self, doc, point_id):
        ids = [p['id'] for p in doc['restore_points']]
        if point_id not in ids:
            raise ReplicaStoreError('unknown restore point %r; known points (oldest first): %s'
                                    % (point_id, ', '.join(ids) or 'none'))
        return ids.index(point_id)

    def _journal_path(self, point):
        return self._path(point['journal']) if point.get('journal') else None

    # ---- cycles ----------------------------------------------------------------------------------------------

    def begin(self, target, cycle_id=None, journal=True, meta=None):
        """Start a replication cycle; returns a Cycle. Holds the state directory lock until commit / abort."""
        self._lock()
        try:
            doc = self._read()
            if doc is not None:
                if doc.get('pending'):
                    raise ReplicaStoreError('an interrupted %s is recorded in %s: call recover(target) first'
                                            % (doc['pending']['op'], self.state_dir))
                self._need(doc, target if doc['restore_points'] else None, allow_rolled_back=False, grown_ok=True)
            else:
                doc = {'change_id': None, 'capacity': None, 'block_size': None, 'restore_points': [], 'meta': {},
                       'digest_map': None, 'open_cycle': None, 'rolled_back': None, 'pending': None}
            if cycle_id is None:
                cycle_id = '%s-%s' % (time.strftime('%Y%m%dT%H%M%SZ', time.gmtime()), os.urandom(3).hex())
            if not _ID_RE.match(cycle_id):
                raise ReplicaStoreError('invalid cycle id %r: use letters, digits, ".", "_" and "-"' % (cycle_id,))
            if cycle_id in [p['id'] for p in doc['restore_points']]:
                raise ReplicaStoreError('restore point %r already exists: use a new cycle id' % cycle_id)
            new = copy.deepcopy(doc)
            name = 'journal-%s.rvj' % cycle_id if journal else None
            new['open_cycle'] = {'id': cycle_id, 'journal': name, 'started': _now(), 'meta': dict(meta or {})}
            if not journal or not doc['restore_points']:
                # without a journal nothing can go back: the older points die as soon as writing starts
                new.update(restore_points=[], change_id=None, digest_map=None, capacity=target.size)
            self._write(new)
            writer = JournalWriter.create(self._path(name), target) if journal else None
            return Cycle(self, target, cycle_id, writer, new['open_cycle']['meta'])
        except Exception:
            self._unlock()
            raise

    def _finish_cycle(self, cycle, point, change_id, digest_map, capacity, block_size, retention, sealed=None):
        actions = []
        try:
            doc = self._read()
            if not doc or (doc.get('open_cycle') or {}).get('id') != cycle.id:
                raise ReplicaStoreError('cycle %s is no longer the open cycle in %s' % (cycle.id, self.state_dir))
            new = copy.deepcopy(doc)
            if digest_map is not None:
                name = 'digests-%d.bin' % (doc['generation'] + 1)
                atomic_write(self._path(name), bytes(digest_map))
                new['digest_map'] = {'file': name, 'size': len(digest_map),
                                     'sha256': hashlib.sha256(digest_map).hexdigest()}
            else:
                new['digest_map'] = None
            if not new['restore_points']:
                point['journal'] = None     # the first point has nothing older to go back to
            new['restore_points'].append(point)
            new.update(change_id=change_id, capacity=capacity, block_size=block_size, open_cycle=None)
            self._write(new)
            if retention is not None:
                self._prune(retention, actions, sealed)
            self._cleanup(actions)
            return copy.deepcopy(point)
        finally:
            self._unlock()

    @_guarded('abort')
    def _abort_cycle(self, cycle):
        actions = []
        try:
            self._undo_open_cycle(cycle.target, self._read(), actions)
            self._cleanup(actions)
            return actions
        finally:
            self._unlock()

    def _undo_open_cycle(self, target, doc, actions):
        oc = doc['open_cycle']
        path = self._path(oc['journal']) if oc['journal'] else None
        if path is None:
            actions.append('cycle %s ran without a journal (seeding) and did not commit: the replica content is '
                           'incomplete and no restore point describes it; the next cycle must copy the whole disk'
                           % oc['id'])
        elif os.path.exists(path):
            reader = replay(path, target, strict=False)
            target.flush()
            msg = 'rolled back uncommitted cycle %s: restored %d bytes from %d journal records' % (
                oc['id'], reader.bytes_covered, reader.records)
            if reader.ignored_bytes:
                msg += ' (ignored a torn tail of %d bytes: %s)' % (reader.ignored_bytes, reader.problem)
            actions.append(msg)
        else:
            actions.append('uncommitted cycle %s had not journaled anything: the target was not modified' % oc['id'])
        new = copy.deepcopy(doc)
        new['open_cycle'] = None
        self._write(new)

    # ---- recovery, rollback ----------------------------------------------------------------------------------

    @_guarded('recovery')
    def recover(self, target):
        """Finish an interrupted rollback / roll forward, roll back an uncommitted cycle, delete stray files.

        Idempotent. Returns a list of human-readable actions.
        """
        actions = []
        self._lock()
        try:
            doc = self._read()
            actions.extend(self.warnings)
            del self.warnings[:]
            if doc is None:
                return actions
            self._check_capacity(doc, target, grown_ok=True)
            if doc.get('pending'):
                doc = self._run_pending(target, doc, actions)
            if doc.get('open_cycle'):
                self._undo_open_cycle(target, doc, actions)
            self._cleanup(actions)
            return actions
        finally:
            self._unlock()

    def _run_pending(self, target, doc, actions):
        op = doc['pending']
        if op['op'] == 'roll_forward':
            return self._do_roll_forward(target, doc, actions)
        if op['op'] == 'rollback':
            return self._do_rollback(target, doc, actions)
        raise ReplicaStoreError('manifest in %s records an unknown pending operation %r' % (self.state_dir, op))

    @_guarded('rollback')
    def rollback(self, target, point_id, keep_redo=True):
        """Make the target equal restore point point_id. Returns a list of actions.

        keep_redo=True saves the newer content first (redo journal) so roll_forward() returns to the newest point;
        keep_redo=False drops the newer points once the target is rolled back (like commit_rollback()).
        """
        actions = []
        self._lock()
        try:
            doc = self._read()
            self._need(doc, target)
            if doc.get('pending'):
                doc = self._run_pending(target, doc, actions)
            points = doc['restore_points']
            idx = self._index(doc, point_id)
            rb = doc.get('rolled_back')
            cur = self._index(doc, rb['point']) if rb else len(points) - 1
            if idx == cur:
                actions.append('the target already is restore point %s' % point_id)
                return actions
            if idx > cur:
                doc = self._start_roll_forward(target, doc, actions)
                rb, cur = None, len(points) - 1
                if idx == cur:
                    return actions
            for i in range(cur, idx, -1):
                path = self._journal_path(points[i])
                if path is None or not os.path.exists(path):
                    raise ReplicaStoreError('restore point %s cannot be reached: the journal of point %s is %s '
                                            '(pruned or lost); pick a newer point'
                                            % (point_id, points[i]['id'], points[i].get('journal') or 'pruned'))
                try:
                    for dummy in JournalReader(path, strict=True, decode=False):
                        pass
                except JournalError as e:
                    raise ReplicaStoreError('restore point %s cannot be reached: %s' % (point_id, e))
            redo = rb['redo'] if rb else ('redo-%d.rvj' % (doc['generation'] + 1))
            new = copy.deepcopy(doc)
            new['pending'] = {'op': 'rollback', 'point': point_id, 'from': points[cur]['id'],
                              'redo': redo if keep_redo else None, 'started': _now()}
            self._write(new)
            self._do_rollback(target, new, actions)
            self._cleanup(actions)
            return actions
        finally:
            self._unlock()

    def _do_rollback(self, target, doc, actions):
        op = doc['pending']
        points = doc['restore_points']
        idx, cur = self._index(doc, op['point']), self._index(doc, op['from'])
        writer = JournalWriter.open_append(self._path(op['redo']), target) if op['redo'] else None
        try:
            for i in range(cur, idx, -1):
                reader = replay(self._journal_path(points[i]), target, strict=True,
                                before_batch=writer.preserve_many if writer else None)
                actions.append('applied journal of restore point %s (%d bytes)'
                               % (points[i]['id'], reader.bytes_covered))
            target.flush()
        finally:
            if writer is not None:
                writer.close()
        new = copy.deepcopy(doc)
        new['pending'] = None
        if op['redo']:
            new['rolled_back'] = {'point': op['point'], 'redo': op['redo'], 'since': _now(),
                                  'newest': points[-1]['id']}
            actions.append('target is at restore point %s; roll_forward() returns to %s'
                           % (op['point'], points[-1]['id']))
        else:
            self._make_newest(new, idx)
            actions.append('target is at restore point %s; newer points were dropped' % op['point'])
        return self._write(new)

    @staticmethod
    def _make_newest(doc, idx):
        point = doc['restore_points'][idx]
        doc['restore_points'] = doc['restore_points'][:idx + 1]
        doc.update(change_id=point['change_id'], digest_map=None, rolled_back=None)
        doc['meta'] = dict(doc.get('meta') or {}, digest_map_reset_by='rollback to %s' % point['id'])

    def _start_roll_forward(self, target, doc, actions):
        new = copy.deepcopy(doc)
        new['pending'] = {'op': 'roll_forward', 'started': _now()}
        return self._do_roll_forward(target, self._write(new), actions)

    def _do_roll_forward(self, target, doc, actions):
        rb = doc['rolled_back']
        if rb:
            reader = replay(self._path(rb['redo']), target, strict=False)
            target.flush()
            actions.append('rolled forward from restore point %s to %s (%d bytes)'
                           % (rb['point'], doc['restore_points'][-1]['id'], reader.bytes_covered))
        new = copy.deepcopy(doc)
        new.update(pending=None, rolled_back=None)
        return self._write(new)

    @_guarded('roll forward')
    def roll_forward(self, target):
        """Undo a rollback made with keep_redo: the target returns to the newest restore point."""
        actions = []
        self._lock()
        try:
            doc = self._read()
            self._need(doc, target)
            if doc.get('pending'):
                doc = self._run_pending(target, doc, actions)
            if doc.get('rolled_back'):
                self._start_roll_forward(target, doc, actions)
            else:
                actions.append('the target already is the newest restore point')
            self._cleanup(actions)
            return actions
        finally:
            self._unlock()

    def commit_rollback(self):
        """Make the rolled-back point the newest: newer points, their journals and the redo journal are dropped.

        The digest map is dropped too (it described the newest point): the next cycle must compare digests of the
        whole replica; change_id becomes the change id of the kept point.
        """
        actions = []
        self._lock()
        try:
            doc = self._read()
            self._need(doc)
            if doc.get('pending') or not doc.get('rolled_back'):
                raise ReplicaStoreError('commit_rollback() needs a completed rollback; %s' % (
                    'call recover(target) to finish the interrupted one' if doc.get('pending')
                    else 'the replica is not rolled back'))
            new = copy.deepcopy(doc)
            self._make_newest(new, self._index(doc, doc['rolled_back']['point']))
            self._write(new)
            actions.append('restore point %s is now the newest' % doc['rolled_back']['point'])
            self._cleanup(actions)
            return actions
        finally:
            self._unlock()

    # ---- retention -------------------------------------------------------------------------------------------

    def prune(self, keep, sealed=None):
        """Delete the oldest restore points (and journals) so that `keep` points remain, or with `sealed` (ids of
        the points the replica VM sealed) `keep` sealed points with what lies between them (prune_start). Returns
        the removed ids."""
        self._lock()
        try:
            doc = self._read()
            self._need(doc)
            if doc.get('pending'):
                raise ReplicaStoreError('an interrupted %s is recorded: call recover(target) first'
                                        % doc['pending']['op'])
            actions = []
            removed = self._prune(keep, actions, sealed)
            self._cleanup(actions)
            return removed
        finally:
            self._unlock()

    def _prune(self, keep, actions, sealed=None):
        doc = self._doc
        points = doc['restore_points']
        drop = prune_start([p['id'] for p in points], keep, sealed)
        if drop <= 0:
            return []
        rb = doc.get('rolled_back')
        if rb and self._index(doc, rb['point']) < drop:
            raise ReplicaStoreError('cannot prune to %d points: the replica is rolled back to %s, which would be '
                                    'removed; roll_forward() or commit_rollback() first' % (keep, rb['point']))
        new = copy.deepcopy(doc)
        new['restore_points'] = new['restore_points'][drop:]
        # the oldest kept point has nothing older to go back to: its journal is useless now
        new['restore_points'][0]['journal'] = None
        self._write(new)
        removed = [p['id'] for p in points[:drop]]
        actions.append('pruned restore points %s' % ', '.join(removed))
        return removed


class Cycle(object):
    """One open replication cycle (from ReplicaStore.begin())."""

    def __init__(self, store, target, cycle_id, writer, meta):
        self.store = store
        self.target = target
        self.id = cycle_id
        self.writer = writer
        self.meta = meta
        self.closed = False

    def _check(self):
        if self.closed:
            raise ReplicaStoreError('cycle %s is already committed or aborted' % self.id)

    def preserve_many(self, ranges):
        """Journal the current content of ranges ((offset, length) pairs) before they are overwritten."""
        self._check()
        if self.writer is None:
            return 0
        for offset, length in ranges:
            if offset + length > self.target.size:
                raise ReplicaStoreError('range (%d, %d) is beyond the end of %s (%d bytes)'
                                        % (offset, length, self.store.state_dir, self.target.size))
        return self.writer.preserve_many(ranges)

    def preserve(self, offset, length):
        return self.preserve_many([(offset, length)])

    @property
    def bytes_journaled(self):
        return self.writer.bytes_covered if self.writer else 0

    def commit(self, change_id, digest_map, capacity, block_size, meta=None, retention=None, sealed=None):
        """Flush the target, seal the journal, commit digest map + manifest, prune. Returns the new point.

        retention: restore points to keep (None: all); sealed: the ids the replica VM lists as sealed, so that
        retention counts sealed points and never drops one for partial points (see prune_start)."""
        self._check()
        if capacity != self.target.size:
            raise ReplicaStoreError('capacity mismatch: commit says %d bytes but the target is %d bytes'
                                    % (capacity, self.target.size))
        if not isinstance(block_size, int) or block_size & (block_size - 1) or not MIN_BLOCK <= block_size <= MAX_BLOCK:
            raise ReplicaStoreError('block size %r must be a power of two between %d and %d'
                                    % (block_size, MIN_BLOCK, MAX_BLOCK))
        self.target.flush()
        journal = None
        if self.writer is not None:
            self.writer.seal()
            journal = os.path.basename(self.writer.path)
        point = {'id': self.id, 'created': _now(), 'change_id': change_id, 'journal': journal,
                 'bytes_journaled': self.bytes_journaled, 'meta': dict(self.meta, **(meta or {}))}
        self.closed = True
        return self.store._finish_cycle(self, point, change_id, digest_map, capacity, block_size, retention,
                                        None if sealed is None else list(sealed))

    def abort(self):
        """Roll back what this cycle wrote and delete its journal. Returns a list of actions."""
        self._check()
        self.closed = True
        if self.writer is not None:
            self.writer.close()
        return self.store._abort_cycle(self)
