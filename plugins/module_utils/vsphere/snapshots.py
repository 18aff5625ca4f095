# -*- coding: utf-8 -*-
# Copyright: (c) 2026, replicator.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""VM snapshots: the whole tree (every node, siblings included), lookup by name (+ parent name), the per-disk
facts a snapshot froze, and create / remove / revert waited on through the one task waiter.

The tree functions work on the `snapshot` property as a PropertyCollector returns it (pyvmomi data objects,
no round trip); only snapshot_disks and the three operations talk to the server.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

from ansible_collections.replicator.vsphere.plugins.module_utils.vsphere.vm_disks import disk_facts
from ansible_collections.replicator.vsphere.plugins.module_utils.vsphere.errors import Ambiguous, VsphereError
from ansible_collections.replicator.vsphere.plugins.module_utils.vsphere.properties import fetch
from ansible_collections.replicator.vsphere.plugins.module_utils.vsphere.tasks import run_task

# vSphere allows 496 snapshots per chain; a tree larger than this is a malformed reply, not a VM.
MAX_NODES = 10000


class SnapshotNode(object):
    """One node of a VM's snapshot tree, with its parent's name and moid."""

    def __init__(self, tree, parent, depth, current_moid):
        self.ref = tree.snapshot
        self.moid = tree.snapshot._moId if tree.snapshot is not None else None
        self.name = tree.name
        self.description = tree.description or ''
        self.id = tree.id
        self.create_time = tree.createTime
        self.power_state = str(tree.state) if tree.state is not None else None
        self.quiesced = bool(tree.quiesced)
        self.parent = parent.name if parent is not None else None
        self.parent_moid = parent.moid if parent is not None else None
        self.depth = depth
        self.current = self.moid is not None and self.moid == current_moid

    def facts(self):
        """The user-facing facts (JSON-safe, no managed object references)."""
        created = self.create_time
        return {
            'name': self.name,
            'moid': self.moid,
            'id': self.id,
            'description': self.description,
            'create_time': created.isoformat() if hasattr(created, 'isoformat') else created,
            'power_state': self.power_state,
            'quiesced': self.quiesced,
            'parent': self.parent,
            'parent_moid': self.parent_moid,
            'current': self.current,
        }


def walk(snapshot_info):
    """Every node of a VM's `snapshot` property (vim.vm.SnapshotInfo or None), depth first, siblings in order."""
    if snapshot_info is None:
        return []
    current = snapshot_info.currentSnapshot._moId if snapshot_info.currentSnapshot is not None else None
    nodes = []
    stack = [(tree, None, 0) for tree in reversed(snapshot_info.rootSnapshotList or [])]
    while stack:
        if len(nodes) >= MAX_NODES:
            raise VsphereError('The snapshot tree has more than %d nodes' % MAX_NODES, fault='InvalidResponse')
        tree, parent, depth = stack.pop()
        node = SnapshotNode(tree, parent, depth, current)
        nodes.append(node)
        stack.extend((child, node, depth + 1) for child in reversed(tree.childSnapshotList or []))
    return nodes


def current_node(nodes):
    """The VM's current snapshot (the parent of the next one created), or None."""
    for node in nodes:
        if node.current:
            return node
    return None


def matching(nodes, name, parent=None):
    """Nodes named `name` (and, when `parent` is given, whose parent snapshot is named `parent`)."""
    return [n for n in nodes if n.name == name and (parent is None or n.parent == parent)]


def find_one(nodes, name, parent=None, vm_name=None):
    """The one node named `name` (+ parent), or None; several -> Ambiguous naming each one's parent and moid."""
    found = matching(nodes, name, parent)
    if len(found) <= 1:
        return found[0] if found else None
    where = ', '.join('%s (parent %s)' % (n.moid, "'%s'" % n.parent if n.parent is not None else 'none')
                      for n in found)
    scope = " with parent '%s'" % parent if parent is not None else ''
    hint = ('Set parent_name to the name of the parent snapshot to pick one.' if parent is None else
            'Several snapshots with the same name share this parent; rename or remove the extra ones in vSphere.')
    raise Ambiguous("%d snapshots named '%s'%s on VM '%s': %s" % (len(found), name, scope, vm_name, where),
                    fault='Ambiguous', hint=hint)


def snapshot_disks(client, snapshot_ref):
    """Per-disk facts of a snapshot, read from its own config.hardware.device (one round trip)."""
    props = fetch(client, snapshot_ref, ['config.hardware.device'])
    return disk_facts(props['config.hardware.device'])


def create_snapshot(client, vm, vm_name, name, description='', memory=False, quiesce=False, timeout=3600):
    """Create a child of the current snapshot: (snapshot reference, task moid)."""
    action = "Creating snapshot '%s' of VM '%s'" % (name, vm_name)
    return run_task(client, vm.CreateSnapshot_Task, action, timeout, name=name, description=description or '',
                    memory=memory, quiesce=quiesce)


def remove_snapshot(client, ref, name, vm_name, timeout=3600):
    """Remove one snapshot, keeping its children (their data merges down): the task moid."""
    action = "Removing snapshot '%s' (%s) of VM '%s'" % (name, ref._moId, vm_name)
    return run_task(client, ref.RemoveSnapshot_Task, action, timeout, removeChildren=False, consolidate=True)[1]


def revert_snapshot(client, ref, name, vm_name, timeout=3600):
    """Revert the VM to a snapshot (to the power state the snapshot recorded): the task moid."""
    action = "Reverting VM '%s' to snapshot '%s' (%s)" % (vm_name, name, ref._moId)
    return run_task(client, ref.RevertToSnapshot_Task, action, timeout)[1]
