# -*- coding: utf-8 -*-
# Copyright: (c) 2026, replicator.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Operations on a replica disk's store, run where the replica disk is reachable (the target proxy).

Each operation takes and returns plain JSON-able dicts, so the same call runs in-process or on a remote proxy
(ssh_transport ships this file with the receiver bundle). Operations:

  inspect          committed state: change_id, capacity, restore points, rolled-back point, digest map present
  recover          undo an uncommitted cycle / finish an interrupted rollback
  rollback         bring the replica disk to a restore point (keeping a redo journal by default)
  roll_forward     back to the newest point (failover undo)
  commit_rollback  make the rolled-back point the newest (permanent failover)
  prune            keep the newest N restore points
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json
import os

from ansible_collections.replicator.vsphere.plugins.module_utils.datapath.endpoint import open_endpoint
from ansible_collections.replicator.vsphere.plugins.module_utils.store.replica_store import (
    ReplicaStore, ReplicaStoreError, default_state_dir,
)

OPERATIONS = ('inspect', 'recover', 'rollback', 'roll_forward', 'commit_rollback', 'prune')


def summary(store):
    """The committed state in the shape callers use (no journal internals)."""
    doc = store.load()
    if doc is None:
        return {'exists': False, 'change_id': None, 'capacity': None, 'block_size': None, 'restore_points': [],
                'rolled_back': None, 'has_digest_map': False, 'generation': None}
    return {
        'exists': True,
        'change_id': doc.get('change_id'),
        'capacity': doc.get('capacity'),
        'block_size': doc.get('block_size'),
        'restore_points': [dict((k, p.get(k)) for k in ('id', 'created', 'change_id', 'meta')) for p in
                           doc.get('restore_points') or []],
        'rolled_back': (doc.get('rolled_back') or {}).get('point'),
        'has_digest_map': bool(doc.get('digest_map')),
        'generation': doc.get('generation'),
    }


def run(request):
    """Run one operation: request = {'op', 'target', 'state_dir', 'allowed_roots', 'point', 'keep', 'keep_redo'}.

    Returns {'changed': bool, 'actions': [...], 'state': summary}. Raises ReplicaStoreError / EndpointError.
    """
    op = request.get('op')
    if op not in OPERATIONS:
        raise ReplicaStoreError('unknown store operation %r (use one of %s)' % (op, ', '.join(OPERATIONS)))
    target = request['target']
    store = ReplicaStore(request.get('state_dir') or default_state_dir(target))
    if op == 'inspect':
        return {'changed': False, 'actions': [], 'state': summary(store)}
    before = summary(store)
    if op == 'prune':
        actions = ['removed restore point %s' % p for p in store.prune(int(request['keep'])) or []]
    elif op == 'commit_rollback':
        actions = store.commit_rollback() if before['rolled_back'] else []
    else:
        with open_endpoint(target, writable=True, allowed_roots=request.get('allowed_roots')) as endpoint:
            actions = list(store.recover(endpoint) or [])
            if op == 'rollback' and summary(store)['rolled_back'] != request.get('point'):
                actions += store.rollback(endpoint, request.get('point'), keep_redo=request.get('keep_redo', True))
            elif op == 'roll_forward' and summary(store)['rolled_back']:
                actions += store.roll_forward(endpoint)
    after = summary(store)
    return {'changed': bool(actions) or after != before, 'actions': actions, 'state': after}


def serve_request(rfile, wfd):
    """Remote entry point: one JSON request line in, one JSON answer out ({'ok', 'result' | 'error', 'type'})."""
    try:
        answer = {'ok': True, 'result': run(json.loads(rfile.readline().decode('utf-8')))}
    except Exception as e:  # every failure must reach the caller as a message
        answer = {'ok': False, 'error': str(e) or e.__class__.__name__, 'type': e.__class__.__name__}
    data = json.dumps(answer).encode('utf-8')
    while data:
        data = data[os.write(wfd, data):]
    return 0 if answer['ok'] else 1
