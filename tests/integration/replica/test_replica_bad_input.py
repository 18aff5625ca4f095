# -*- coding: utf-8 -*-
# Copyright: (c) 2026, replicator.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""replica_info and replica_failover on bad input, run through ansible-playbook: unknown VM or replica, wrong
password (never echoed), unreachable host."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

from ansible_collections.replicator.vsphere.tests.integration.replica.conftest import target_args

from integration_servers import free_port


def _failover(lab, conn, **extra):
    args = dict(conn, state='test', test_network='DR Network',
                target_datastore_paths=lab.state['sites']['target']['datastores'])
    args.update(extra)
    return args


def test_replica_info_bad_input(lab, run):
    unknown = run('replica_info', dict(target_args(lab), replica_name='no-such-replica'))
    assert not unknown.get('failed') and unknown['replicas'] == [], unknown.output  # an info module: nothing found
    wrong = run('replica_info', dict(target_args(lab), password='not-it'))
    assert wrong['failed'] and wrong['fault'] == 'InvalidLogin' and 'not-it' not in wrong['msg']
    down = free_port()
    unreachable = run('replica_info', dict(target_args(lab), port=down, timeout=5))
    assert unreachable['failed'] and 'Cannot reach' in unreachable['msg'] and str(down) in unreachable['msg']


def test_replica_failover_bad_input(lab, conn, run):
    unknown = run('replica_failover', _failover(lab, conn, name='no-such-vm'), site='source')
    assert unknown['failed'] and "VM 'no-such-vm'" in unknown['msg'] and 'not found' in unknown['msg'], unknown.output
    no_replica = run('replica_failover', _failover(lab, target_args(lab), replica_name='no-such-replica'))
    assert no_replica['failed'] and 'no-such-replica' in no_replica['msg']
    wrong = run('replica_failover', _failover(lab, dict(conn, password='not-it'), name='web01'), site='source')
    assert wrong['failed'] and wrong['fault'] == 'InvalidLogin' and 'not-it' not in wrong['msg']
    down = free_port()
    unreachable = run('replica_failover', _failover(lab, dict(conn, port=down, timeout=5), name='web01'),
                      site='source')
    assert unreachable['failed'] and 'Cannot reach' in unreachable['msg']
