# -*- coding: utf-8 -*-
# Copyright: (c) 2026, replicator.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one task waiter: WaitForUpdatesEx on the task's info, with a user-facing timeout.

No polling loop: the server pushes state changes, and each wait blocks up to the time left.
On timeout the task may still be running in vCenter: the error says so and carries its moid.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import time

try:
    from pyVmomi import vim, vmodl
except ImportError:  # pragma: no cover - the client reports the missing library
    vim = vmodl = None

from ansible_collections.replicator.vsphere.plugins.module_utils.vsphere.errors import (
    TaskFailed, TaskTimeout, fault_message, fault_name, from_fault, FAULT_HINTS,
)

FINAL_STATES = ('success', 'error')


def _task_filter(client, task):
    paths = ['info.state', 'info.error', 'info.result']
    prop_spec = vmodl.query.PropertyCollector.PropertySpec(type=vim.Task, pathSet=paths, all=False)
    obj_spec = vmodl.query.PropertyCollector.ObjectSpec(obj=task, skip=False)
    spec = vmodl.query.PropertyCollector.FilterSpec(objectSet=[obj_spec], propSet=[prop_spec])
    return client.content.propertyCollector.CreateFilter(spec, True)


def wait_for_task(client, task, action, timeout=3600):
    """Wait until `task` ends; return info.result. Raise TaskFailed / TaskTimeout with clear messages.

    `action` names what the task does, for messages ("Creating snapshot 'x' of VM app01").
    """
    collector = client.content.propertyCollector
    task_filter = _task_filter(client, task)
    deadline = time.monotonic() + timeout
    state = {'info.state': None, 'info.error': None, 'info.result': None}
    version = ''
    try:
        while state['info.state'] not in FINAL_STATES:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TaskTimeout('%s did not finish within %ss; the task %s is still running in vSphere'
                                  % (action, timeout, task._moId), fault='Timeout', task=task._moId,
                                  hint='Raise the timeout or check the task in the vSphere client before retrying.')
            options = vmodl.query.PropertyCollector.WaitOptions(maxWaitSeconds=max(1, min(int(left), 60)))
            update = collector.WaitForUpdatesEx(version, options)
            if update is None:
                continue
            version = update.version
            for filter_set in update.filterSet or []:
                for obj_set in filter_set.objectSet or []:
                    for change in obj_set.changeSet or []:
                        state[change.name] = change.val
    finally:
        task_filter.Destroy()
    if state['info.state'] == 'error':
        error = state['info.error']
        name = fault_name(error) if error is not None else 'TaskError'
        text = fault_message(error) if error is not None else 'unknown error'
        raise TaskFailed('%s failed: %s (%s)' % (action, text, name), fault=name, hint=FAULT_HINTS.get(name),
                         task=task._moId)
    return state['info.result']


def run_task(client, call, action, timeout, *args, **kwargs):
    """Start a task with `call(*args, **kwargs)` and wait for it: (info.result, task moid).

    Faults raised by the call itself (before any task exists) become VsphereError with a hint.
    """
    try:
        task = call(*args, **kwargs)
    except (vim.fault.VimFault, vmodl.MethodFault) as exc:
        raise from_fault(exc, action)
    return wait_for_task(client, task, action, timeout=timeout), task._moId
