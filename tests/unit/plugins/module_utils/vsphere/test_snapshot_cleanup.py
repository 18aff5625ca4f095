# -*- coding: utf-8 -*-
# Copyright: (c) 2026, replicator.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Orphan selection: ours by prefix, old enough by the server clock, deepest first."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import collections
import datetime

from ansible_collections.replicator.vsphere.plugins.module_utils.vsphere.snapshot_cleanup import (
    age_seconds, ours, select_orphans,
)

UTC = datetime.timezone.utc
NOW = datetime.datetime(2026, 5, 1, 12, 0, 0, tzinfo=UTC)
Node = collections.namedtuple('Node', 'name create_time depth')


def ago(seconds):
    return NOW - datetime.timedelta(seconds=seconds)


def test_ours_needs_a_non_empty_prefix():
    assert ours('replicator-cycle', 'replicator-')
    assert not ours('my replicator-cycle', 'replicator-')
    assert not ours('anything', '')
    assert not ours(None, 'replicator-')


def test_age_naive_is_utc_and_unknown_is_none():
    assert age_seconds(ago(90), NOW) == 90
    assert age_seconds(ago(90).replace(tzinfo=None), NOW) == 90
    assert age_seconds(datetime.datetime(2026, 5, 1, 13, 0, 0, tzinfo=datetime.timezone(datetime.timedelta(hours=2))),
                       NOW) == 3600
    assert age_seconds(None, NOW) is None


def test_select_by_prefix_and_age_deepest_first():
    nodes = [Node('replicator-a', ago(7200), 0), Node('user-keep', ago(99999), 1),
             Node('replicator-young', ago(60), 1), Node('replicator-deep', ago(3600), 2),
             Node('replicator-unknown', None, 1)]
    picked = select_orphans(nodes, 'replicator-', 3600, NOW)
    assert [n.name for n in picked] == ['replicator-deep', 'replicator-a']


def test_min_age_zero_takes_all_of_ours_and_never_users():
    nodes = [Node('replicator-a', ago(1), 0), Node('user', ago(1), 1), Node('replicator-b', None, 1)]
    assert [n.name for n in select_orphans(nodes, 'replicator-', 0, None)] == ['replicator-b', 'replicator-a']


def test_empty_prefix_selects_nothing():
    assert select_orphans([Node('x', ago(9999), 0)], '', 0, NOW) == []
