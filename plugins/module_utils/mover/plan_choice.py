# -*- coding: utf-8 -*-
# Copyright: (c) 2026, replicator.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which transfer plan a cycle uses, and why (pure: no pyvmomi, no I/O).

The committed state comes from the replica store on the target (the manifest is authoritative); the source side
is the cycle snapshot's changeId for the disk. The reason is returned to the user as it is.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

PLANS = ('auto', 'full', 'cbt', 'digests', 'seeded')


class PlanChoiceError(ValueError):
    """The requested plan cannot run on this replica."""


def change_id_epoch(change_id):
    """The CBT epoch of a changeId: '52 de ... 1a/17' -> '52 de ... 1a'. A reset starts a new epoch."""
    if not change_id or '/' not in change_id:
        return None
    return change_id.rsplit('/', 1)[0].strip()


def choose_plan(committed, source_change_id, capacity, requested='auto', distrust_cbt=None):
    """(kind, reason, previous_change_id) for a cycle.

    committed: the replica store's committed state ({'change_id', 'capacity', 'has_digest_map',
    'restore_points'}) or None for a replica disk that never completed a cycle. source_change_id: the changeId of
    the disk in the cycle snapshot (None when CBT is off or not active yet). previous_change_id is set for 'cbt'.
    distrust_cbt: why CBT must not be trusted for this cycle although the changeIds would allow it (the source
    disk was written outside CBT, e.g. by a failback), or None.
    """
    if requested not in PLANS:
        raise PlanChoiceError('plan must be one of %s, got %r' % (', '.join(PLANS), requested))
    first = not committed or not committed.get('restore_points')
    if requested == 'full':
        return 'full', 'full copy requested', None
    if requested == 'seeded':
        return 'seeded', 'seeding requested: the replica disk is compared with the source block by block', None
    if first:
        if requested in ('cbt', 'digests'):
            raise PlanChoiceError('plan %s needs a replica that completed a cycle; this one has no restore point '
                                  '(use plan auto, full or seeded)' % requested)
        return 'full', 'first cycle: the replica has no restore point yet', None
    if committed.get('capacity') != capacity:
        return 'seeded', ('disk size changed from %s to %s bytes since the last cycle: comparing the whole disk'
                          % (committed.get('capacity'), capacity)), None
    if not committed.get('has_digest_map'):
        return 'seeded', 'the replica has no digest map (rolled back or seeded): comparing the whole disk', None
    if requested == 'digests':
        return 'digests', 'digest comparison requested', None
    if distrust_cbt:
        if requested == 'cbt':
            raise PlanChoiceError('plan cbt is not possible: %s' % distrust_cbt)
        return 'digests', distrust_cbt + ': comparing block digests instead', None
    previous = committed.get('change_id')
    reason = _cbt_unusable(previous, source_change_id)
    if reason:
        if requested == 'cbt':
            raise PlanChoiceError('plan cbt is not possible: %s' % reason)
        return 'digests', reason + ': comparing block digests instead', None
    return 'cbt', 'changed blocks since changeId %s' % previous, previous


def _cbt_unusable(previous, current):
    if not current:
        return 'CBT is not active on the source disk (no changeId in the snapshot)'
    if not previous:
        return 'the last restore point has no changeId (it was made without CBT)'
    if change_id_epoch(previous) != change_id_epoch(current):
        return 'CBT was reset on the source disk (changeId epoch changed)'
    return None
