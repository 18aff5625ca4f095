# -*- coding: utf-8 -*-
# Copyright: (c) 2026, replicator.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Changed Block Tracking of a VM: its state (changeTrackingEnabled + per-disk changeId), the steps that bring it
to present / absent / reset, and running them (ReconfigVM_Task; stun = temporary snapshot create + remove).

cbt_state and plan_steps are pure (they read already-fetched properties); apply_steps does the calls.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import time

try:
    from pyVmomi import vim
except ImportError:  # pragma: no cover - the client reports the missing library
    vim = None

from ansible_collections.replicator.vsphere.plugins.module_utils.vsphere.vm_disks import disk_facts
from ansible_collections.replicator.vsphere.plugins.module_utils.vsphere.errors import VsphereError
from ansible_collections.replicator.vsphere.plugins.module_utils.vsphere.snapshots import (
    create_snapshot, remove_snapshot,
)
from ansible_collections.replicator.vsphere.plugins.module_utils.vsphere.tasks import run_task

CBT_PATHS = ['name', 'config.instanceUuid', 'config.changeTrackingEnabled', 'config.hardware.device',
             'runtime.powerState']

STUN_SUFFIX = 'cbt-stun-'


class Untrackable(VsphereError):
    """A disk CBT cannot track (independent, physical RDM) and the user asked to refuse those."""


def cbt_state(props, skip_untrackable=False):
    """{enabled, powered_on, active, pending, disks} out of CBT_PATHS properties.

    active: enabled and every trackable disk has a changeId (on a powered-off VM, enabled is enough: the next
    power-on activates it). Each disk: key, label, uuid, change_id, tracked, untrackable, skipped.
    """
    enabled = bool(props.get('config.changeTrackingEnabled'))
    power = props.get('runtime.powerState')
    powered_on = power is not None and str(power) != 'poweredOff'
    disks = []
    for disk in disk_facts(props.get('config.hardware.device')):
        disks.append({
            'key': disk['key'],
            'label': disk['label'],
            'uuid': disk['uuid'],
            'file': disk['file'],
            'change_id': disk['change_id'],
            'tracked': bool(enabled and disk['change_id']),
            'untrackable': disk['untrackable'],
            'skipped': bool(disk['untrackable'] and skip_untrackable),
        })
    trackable = [d for d in disks if not d['untrackable']]
    waiting = [d for d in trackable if not d['change_id']]
    active = enabled and not (powered_on and waiting)
    return {'enabled': enabled, 'powered_on': powered_on, 'active': active,
            'pending': bool(enabled and powered_on and waiting), 'disks': disks}


def check_trackable(state, vm_name, untrackable):
    """Raise Untrackable when a disk cannot be tracked and `untrackable` is 'fail'."""
    bad = [d for d in state['disks'] if d['untrackable']]
    if bad and untrackable == 'fail':
        listed = '; '.join('%s (key %s): %s' % (d['label'], d['key'], d['untrackable']) for d in bad)
        raise Untrackable("VM '%s' has disks Changed Block Tracking cannot track: %s" % (vm_name, listed),
                          fault='Untrackable',
                          hint='Make the disks dependent (persistent) / virtual-mode RDMs, or set untrackable: skip '
                               'to track the other disks and replicate these some other way.')


def plan_steps(state, desired, stun=True):
    """The steps from `state` (cbt_state) to `desired` (present / absent / reset): a list of 'enable', 'disable'
    and 'stun'. A stun only where it activates tracking: on a powered-on VM, never on a powered-off one."""
    steps = []
    if desired == 'absent':
        return ['disable'] if state['enabled'] else []
    if desired == 'reset':
        steps = ['disable', 'stun', 'enable', 'stun'] if state['powered_on'] else ['disable', 'enable']
    else:
        if not state['enabled']:
            steps.append('enable')
        if state['powered_on'] and (not state['enabled'] or state['pending']):
            steps.append('stun')
    if not stun:
        steps = [s for s in steps if s != 'stun']
    return steps


def predicted_state(state, desired, steps):
    """What cbt_state would say after `steps` (for check mode and diff): {enabled, active}."""
    if desired == 'absent':
        return {'enabled': False, 'active': False}
    stunned = 'stun' in steps
    active = (not state['powered_on']) or stunned or (state['active'] and 'disable' not in steps)
    return {'enabled': True, 'active': active}


def stun_name(prefix, now=None):
    """Name of the temporary stun snapshot: our prefix, so snapshot_consolidate removes it if a run dies."""
    return '%s%s%d' % (prefix, STUN_SUFFIX, int(now if now is not None else time.time()))


def set_tracking(client, vm, vm_name, enabled, timeout):
    """ReconfigVM_Task with changeTrackingEnabled: the task moid."""
    action = "%s Changed Block Tracking on VM '%s'" % ('Enabling' if enabled else 'Disabling', vm_name)
    spec = vim.vm.ConfigSpec(changeTrackingEnabled=enabled)
    return run_task(client, vm.ReconfigVM_Task, action, timeout, spec=spec)[1]


def stun_cycle(client, vm, vm_name, prefix, timeout):
    """Create and remove a temporary snapshot (the stun that activates CBT): [create task, remove task]."""
    name = stun_name(prefix)
    snapshot, create_task = create_snapshot(client, vm, vm_name, name, 'Temporary: activates Changed Block Tracking',
                                            memory=False, quiesce=False, timeout=timeout)
    try:
        return [create_task, remove_snapshot(client, snapshot, name, vm_name, timeout=timeout)]
    except VsphereError as exc:
        exc.hint = ((exc.hint + ' ') if exc.hint else '') + (
            "The temporary snapshot '%s' may be left behind: snapshot_consolidate with prefix '%s' removes it."
            % (name, prefix))
        raise


def apply_steps(client, vm, vm_name, steps, prefix, timeout):
    """Run the steps in order: [{step, task}] for each task started."""
    done = []
    for step in steps:
        if step == 'stun':
            done.extend({'step': 'stun', 'task': task} for task in stun_cycle(client, vm, vm_name, prefix, timeout))
        else:
            done.append({'step': step, 'task': set_tracking(client, vm, vm_name, step == 'enable', timeout)})
    return done
