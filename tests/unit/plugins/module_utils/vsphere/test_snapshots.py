# -*- coding: utf-8 -*-
# Copyright: (c) 2026, replicator.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The snapshot tree walk and lookup on pyvmomi data objects as a PropertyCollector returns them (no server)."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import datetime

import pytest
from pyVmomi import vim

from ansible_collections.replicator.vsphere.plugins.module_utils.vsphere.errors import Ambiguous, TaskTimeout
from ansible_collections.replicator.vsphere.plugins.module_utils.vsphere.snapshots import (
    current_node, find_one, matching, walk,
)

T0 = datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc)


def node(moid, name, *children, **kw):
    return vim.vm.SnapshotTree(snapshot=vim.vm.Snapshot(moid), name=name, description=kw.get('description', ''),
                               id=int(moid.split('-')[1]), createTime=T0, state='poweredOn',
                               quiesced=kw.get('quiesced', False), childSnapshotList=list(children))


def info(current, *roots):
    return vim.vm.SnapshotInfo(currentSnapshot=vim.vm.Snapshot(current) if current else None,
                               rootSnapshotList=list(roots))


# base -> a -> child (snapshot-4), base -> b -> child (snapshot-6) -> leaf; and a second root "other"
TREE = info('snapshot-6',
            node('snapshot-1', 'base',
                 node('snapshot-2', 'a', node('snapshot-4', 'child')),
                 node('snapshot-3', 'b', node('snapshot-6', 'child', node('snapshot-7', 'leaf')))),
            node('snapshot-5', 'other', quiesced=True, description='user'))


def test_walk_visits_every_node_depth_first_with_siblings():
    nodes = walk(TREE)
    assert [n.moid for n in nodes] == ['snapshot-1', 'snapshot-2', 'snapshot-4', 'snapshot-3', 'snapshot-6',
                                       'snapshot-7', 'snapshot-5']
    by_moid = dict((n.moid, n) for n in nodes)
    assert by_moid['snapshot-4'].parent == 'a' and by_moid['snapshot-4'].parent_moid == 'snapshot-2'
    assert by_moid['snapshot-6'].parent == 'b'
    assert by_moid['snapshot-7'].depth == 3
    assert by_moid['snapshot-1'].parent is None and by_moid['snapshot-5'].parent is None
    assert [n.moid for n in nodes if n.current] == ['snapshot-6']
    assert current_node(nodes).moid == 'snapshot-6'


def test_facts_are_plain_data():
    facts = dict((n.moid, n.facts()) for n in walk(TREE))['snapshot-5']
    assert facts == {'name': 'other', 'moid': 'snapshot-5', 'id': 5, 'description': 'user',
                     'create_time': T0.isoformat(), 'power_state': 'poweredOn', 'quiesced': True,
                     'parent': None, 'parent_moid': None, 'current': False}


def test_no_snapshots():
    assert walk(None) == []
    assert current_node([]) is None


def test_same_name_is_ambiguous_unless_parent_picks_one():
    nodes = walk(TREE)
    assert len(matching(nodes, 'child')) == 2
    with pytest.raises(Ambiguous) as err:
        find_one(nodes, 'child', vm_name='app01')
    assert 'snapshot-4' in err.value.msg and 'snapshot-6' in err.value.msg
    assert "parent 'a'" in err.value.msg
    assert 'parent_name' in err.value.hint
    assert find_one(nodes, 'child', parent='a').moid == 'snapshot-4'
    assert find_one(nodes, 'child', parent='b').moid == 'snapshot-6'
    assert find_one(nodes, 'child', parent='other') is None
    assert find_one(nodes, 'nope') is None
    assert find_one(nodes, 'leaf').moid == 'snapshot-7'


def test_ambiguous_even_with_parent():
    tree = info(None, node('snapshot-1', 'p', node('snapshot-2', 'x'), node('snapshot-3', 'x')))
    with pytest.raises(Ambiguous) as err:
        find_one(walk(tree), 'x', parent='p')
    assert 'rename' in err.value.hint


def test_task_timeout_result_says_still_running():
    err = TaskTimeout('Creating snapshot did not finish', fault='Timeout', task='task-9', hint='h')
    assert err.to_result() == {'msg': err.msg, 'fault': 'Timeout', 'hint': 'h', 'task': 'task-9',
                               'changed': True, 'still_running': True}
