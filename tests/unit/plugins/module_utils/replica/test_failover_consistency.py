# -*- coding: utf-8 -*-
# Copyright: (c) 2026, replicator.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Restore point selection by consistency label (failover_plan.choose_point with consistency / labels)."""
from __future__ import absolute_import, division, print_function
__metaclass__ = type

import pytest

from ansible_collections.replicator.vsphere.plugins.module_utils.replica.failover_plan import (
    FailoverPlanError, choose_point, consistency_of,
)


def _points(*items):
    return [{'id': pid, 'created': created} for pid, created in items]


TIMES = (('c1', '2026-11-25T06:00:00Z'), ('c2', '2026-11-25T07:00:00Z'), ('c3', '2026-11-25T08:00:00Z'),
         ('c4', '2026-11-25T09:00:00Z'), ('c5', '2026-11-25T10:00:00Z'))
DISKS = {2000: _points(*TIMES), 2001: _points(*TIMES)}
# c2 and c4 application-consistent, c3 quiesced only, c5 crash (a failed hook with policy continue), c1 unlabelled
LABELS = {'c2': 'application', 'c3': 'file-system', 'c4': 'application', 'c5': 'crash'}


def test_latest_application_point_skips_newer_weaker_points():
    point = choose_point(DISKS, consistency='application', labels=LABELS)
    assert point['id'] == 'c4' and point['consistency'] == 'application'


def test_file_system_accepts_application_points_too():
    assert choose_point(DISKS, consistency='file-system', labels=LABELS)['id'] == 'c4'
    only_fs = dict(LABELS, c4='crash')
    assert choose_point(DISKS, consistency='file-system', labels=only_fs)['id'] == 'c3'


def test_any_is_the_newest_point_whatever_its_label():
    point = choose_point(DISKS, labels=LABELS)
    assert point['id'] == 'c5' and point['consistency'] == 'crash'
    assert choose_point(DISKS, consistency='any', labels=LABELS)['id'] == 'c5'
    assert 'consistency' not in choose_point(DISKS)  # no labels asked for: the result is as before


def test_consistency_with_a_time_limit():
    assert choose_point(DISKS, before='2026-11-25T08:30:00Z', consistency='application', labels=LABELS)['id'] == 'c2'
    assert choose_point(DISKS, before='2026-11-25T08:30:00Z', consistency='file-system', labels=LABELS)['id'] == 'c3'
    with pytest.raises(FailoverPlanError, match='No restore point at or before'):
        choose_point(DISKS, before='2026-11-25T06:30:00Z', consistency='application', labels=LABELS)


def test_a_named_point_must_be_consistent_enough():
    assert choose_point(DISKS, 'c2', consistency='application', labels=LABELS)['id'] == 'c2'
    with pytest.raises(FailoverPlanError, match='c3 is file-system-consistent, not application-consistent'):
        choose_point(DISKS, 'c3', consistency='application', labels=LABELS)
    with pytest.raises(FailoverPlanError, match='Unknown restore point c9'):
        choose_point(DISKS, 'c9', consistency='application', labels=LABELS)


def test_no_point_consistent_enough_names_what_there_is():
    with pytest.raises(FailoverPlanError) as err:
        choose_point(DISKS, consistency='application', labels={'c5': 'file-system'})
    assert 'no application-consistent restore point' in str(err.value)
    assert 'c1 (crash)' in str(err.value) and 'c5 (file-system)' in str(err.value)
    with pytest.raises(FailoverPlanError, match='Unknown restore point consistency'):
        choose_point(DISKS, consistency='perfect', labels=LABELS)


def test_unlabelled_and_unknown_labels_count_as_crash():
    assert consistency_of(LABELS, 'c1') == 'crash'
    assert consistency_of({'c1': 'mystery'}, 'c1') == 'crash'
    assert consistency_of(None, 'c1') == 'crash'
    with pytest.raises(FailoverPlanError):
        choose_point(DISKS, consistency='file-system', labels={'c1': 'mystery'})
