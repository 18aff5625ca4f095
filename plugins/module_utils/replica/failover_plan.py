# -*- coding: utf-8 -*-
# Copyright: (c) 2026, replicator.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Failover decisions without I/O: which restore point a failover goes to, and which state changes are allowed.

A restore point of a VM is a cycle id present on every replica disk (disk_replicate commits the same cycle_id on
all disks of a cycle). Its time is the newest `created` among the disks: the point is whole once its last disk
committed. Replica states (replica_state.STATES): ready -> failed_over | test_failover -> ready (undone) or
failed_over -> committed.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

from ansible_collections.replicator.vsphere.plugins.module_utils.replica.state import to_epoch

# Module `state` -> replica state it leads to.
TARGET_STATES = {'failed_over': 'failed_over', 'test': 'test_failover', 'undone': 'ready', 'committed': 'committed'}


class FailoverPlanError(ValueError):
    """The failover cannot go as asked; the message says why and what to do."""


class TransitionRefused(FailoverPlanError):
    """The replica's state does not allow the asked change (undo first, already committed...)."""


def common_points(disk_points):
    """The restore points present on every disk, oldest first: [{'id', 'created', 'epoch'}].

    disk_points: {disk label: [{'id', 'created', ...}] oldest first} as store_ops inspect lists them.
    """
    if not disk_points:
        return []
    labels = sorted(disk_points)
    per_disk = [dict((p['id'], p) for p in disk_points[label] or []) for label in labels]
    points = []
    for point in disk_points[labels[0]] or []:
        found = [d.get(point['id']) for d in per_disk]
        if any(p is None for p in found):
            continue
        epochs = [to_epoch(p.get('created')) for p in found]
        epoch = max(e for e in epochs if e is not None) if any(e is not None for e in epochs) else None
        created = next((p.get('created') for p, e in zip(found, epochs) if e == epoch), point.get('created'))
        points.append({'id': point['id'], 'created': created, 'epoch': epoch})
    return points


# How a restore point was made, weakest first (the replicate role labels each point): an application-consistent
# point is also file-system consistent, so asking for file-system accepts both.
CONSISTENCY_LEVELS = ('crash', 'file-system', 'application')


def consistency_of(labels, point_id):
    """The label of a point from {id: label}; a point without one (or with an unknown one) counts as crash."""
    label = (labels or {}).get(point_id)
    return label if label in CONSISTENCY_LEVELS else 'crash'


def _consistent(points, consistency, labels, strict=True):
    """The points at least as consistent as `consistency` ('any' keeps all); raises when none is (if strict)."""
    if consistency in (None, 'any'):
        return points
    if consistency not in CONSISTENCY_LEVELS:
        raise FailoverPlanError('Unknown restore point consistency %r; use any, %s'
                                % (consistency, ', '.join(CONSISTENCY_LEVELS)))
    floor = CONSISTENCY_LEVELS.index(consistency)
    kept = [p for p in points if CONSISTENCY_LEVELS.index(consistency_of(labels, p['id'])) >= floor]
    if not kept and strict:
        raise FailoverPlanError('The replica has no %s-consistent restore point (it has %s)' % (
            consistency, ', '.join('%s (%s)' % (p['id'], consistency_of(labels, p['id'])) for p in points)))
    return kept


def choose_point(disk_points, restore_point='latest', before=None, consistency='any', labels=None):
    """The restore point to fail over to: {'id', 'created', 'epoch'}, plus 'consistency' when labels are given.

    restore_point: 'latest' or a point id; before: a time (epoch or ISO 8601) - the newest point at or before it;
    consistency: 'any', or the weakest label accepted ('file-system' also takes 'application'), with labels
    {point id: label} as the replica's state records them (unlabelled points count as crash-consistent).
    Raises FailoverPlanError for no points, an unknown id, a point missing on a disk, nothing old enough, nothing
    consistent enough.
    """
    point = _choose(disk_points, restore_point, before, consistency, labels)
    if labels is not None:
        point = dict(point, consistency=consistency_of(labels, point['id']))
    return point


def _choose(disk_points, restore_point, before, consistency, labels):
    points = common_points(disk_points)
    if not points:
        detail = ', '.join('%s: %d' % (label, len(disk_points[label] or [])) for label in sorted(disk_points))
        raise FailoverPlanError('The replica has no restore point present on all of its disks (points per disk: %s)'
                                % (detail or 'no disks'))
    if restore_point not in (None, 'latest') and consistency not in (None, 'any'):
        named = [p for p in points if p['id'] == restore_point]
        if named and not _consistent(named, consistency, labels, strict=False):
            raise FailoverPlanError('Restore point %s is %s-consistent, not %s-consistent' % (
                restore_point, consistency_of(labels, restore_point), consistency))
    points = _consistent(points, consistency, labels)
    if before is not None:
        try:
            limit = to_epoch(before)
        except ValueError as exc:
            raise FailoverPlanError(str(exc))
        older = [p for p in points if p['epoch'] is not None and p['epoch'] <= limit]
        if restore_point not in (None, 'latest'):
            older = [p for p in older if p['id'] == restore_point]
        if not older:
            raise FailoverPlanError('No restore point at or before %s (oldest: %s at %s)'
                                    % (before, points[0]['id'], points[0]['created']))
        return older[-1]
    if restore_point in (None, 'latest'):
        return points[-1]
    for point in points:
        if point['id'] == restore_point:
            return point
    missing_on = sorted(label for label in disk_points
                        if restore_point not in [p['id'] for p in disk_points[label] or []])
    if len(missing_on) < len(disk_points):
        raise FailoverPlanError('Restore point %s is missing on disk(s) %s of the replica (a cycle that did not '
                                'complete on every disk)' % (restore_point, ', '.join(str(d) for d in missing_on)))
    raise FailoverPlanError('Unknown restore point %s; the replica has %s'
                            % (restore_point, ', '.join(p['id'] for p in points)))


def position(summary):
    """The restore point a replica disk holds now (store_ops summary): the rolled-back point, else the newest."""
    if summary.get('rolled_back'):
        return summary['rolled_back']
    points = summary.get('restore_points') or []
    return points[-1]['id'] if points else None


def check_transition(current, wanted, current_point=None, wanted_point=None):
    """Whether module state `wanted` may act on replica state `current`; raise FailoverPlanError when refused.

    Returns 'noop' when the replica already is there (by its recorded state), 'act' otherwise. For undone and
    committed the caller still inspects the replica for leftovers (a failover interrupted before its state was
    written), so 'noop' means only that the recorded state agrees.
    """
    current = current or 'ready'
    goal = TARGET_STATES[wanted]
    if current == 'committed' and goal != 'committed':
        raise TransitionRefused('The replica is committed (the failover was made permanent); it cannot be %s'
                                % ('undone' if goal == 'ready' else 'failed over again'))
    if goal in ('failed_over', 'test_failover'):
        if current in ('failed_over', 'test_failover') and current != goal:
            raise TransitionRefused('The replica is in %s; switching directly to %s is refused: undo it first '
                                    '(state=undone)' % (current, goal))
        if current == goal:
            if wanted_point is not None and current_point != wanted_point:
                raise TransitionRefused('The replica is already in %s at restore point %s; undo it first '
                                        '(state=undone) to fail over to %s' % (current, current_point, wanted_point))
            return 'noop'
        return 'act'
    if goal == 'committed':
        if current == 'committed':
            return 'noop'
        if current != 'failed_over':
            raise TransitionRefused('Only a failover can be committed; the replica is %s%s' % (
                current, ' (a test failover is undone, never committed)' if current == 'test_failover' else ''))
        return 'act'
    return 'noop' if current == 'ready' else 'act'
