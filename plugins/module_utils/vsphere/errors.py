# -*- coding: utf-8 -*-
# Copyright: (c) 2026, replicator.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Typed errors of the vSphere control plane and the translation of vim/vmodl faults into clear messages.

module_utils raise these; modules turn them into ``fail_json(msg=..., fault=..., hint=...)``.
Pure Python: faults are recognised by their pyvmomi class name, so this file imports nothing from pyvmomi.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type


class VsphereError(Exception):
    """A control-plane failure with a user-facing message, the fault class name and a hint."""

    def __init__(self, msg, fault=None, hint=None, task=None):
        super(VsphereError, self).__init__(msg)
        self.msg = msg
        self.fault = fault
        self.hint = hint
        self.task = task

    def to_result(self):
        """Keyword arguments for fail_json: only the keys that have a value."""
        result = {'msg': self.msg}
        for key in ('fault', 'hint', 'task'):
            value = getattr(self, key)
            if value:
                result[key] = value
        return result


class ConnectionFailed(VsphereError):
    """Login or transport failure: the endpoint was not usable at all."""


class NotFound(VsphereError):
    """The named object does not exist."""


class Ambiguous(VsphereError):
    """A name matched more than one object."""


class TaskFailed(VsphereError):
    """A vSphere task ended in error."""


class TaskTimeout(VsphereError):
    """A vSphere task did not finish within the timeout; it may still be running."""

    def to_result(self):
        """The task was started and may still change the object: say so (changed, still_running, task moid)."""
        result = super(TaskTimeout, self).to_result()
        result.update(changed=True, still_running=True)
        return result


# Hints for the faults users meet most, by pyvmomi class name (the last dotted part).
FAULT_HINTS = {
    'InvalidLogin': 'Check username and password (or VMWARE_USER / VMWARE_PASSWORD).',
    'NoPermission': 'The account lacks a privilege on this object; grant it on the object or its parent.',
    'NotAuthenticated': 'The session expired or was closed; the next run logs in again.',
    'ManagedObjectNotFound': 'The object was removed or the moid belongs to another vCenter.',
    'InvalidState': 'The object is busy or in the wrong power state; retry when the running task ends.',
    'TaskInProgress': 'Another task is running on this object; retry when it ends.',
    'FileFault': 'A datastore file is missing, locked or unreadable.',
    'FileNotFound': 'A datastore file is missing; check the path and the datastore name.',
    'InvalidArgument': 'A parameter value was rejected by vSphere.',
    'InsufficientResourcesFault': 'The host or datastore lacks capacity for this operation.',
    'SnapshotFault': 'The snapshot operation was refused; check the VM snapshot tree and consolidation state.',
}


def fault_name(exc):
    """The short pyvmomi class name of a fault or exception: 'vim.fault.InvalidLogin' -> 'InvalidLogin'."""
    name = type(exc).__name__
    return name.rsplit('.', 1)[-1]


def fault_message(exc):
    """The human text of a vim/vmodl fault (msg or localized message), else str(exc)."""
    for attr in ('msg', 'localizedMessage'):
        text = getattr(exc, attr, None)
        if text:
            return str(text)
    messages = getattr(exc, 'faultMessage', None) or []
    texts = [getattr(m, 'message', None) for m in messages]
    texts = [t for t in texts if t]
    if texts:
        return '; '.join(texts)
    text = str(exc)
    if text.startswith('(') and '{' in text:      # pyVmomi prints a fault without a message as an object dump
        return _fault_fields(exc) or fault_name(exc)
    return text or fault_name(exc)


_BASE_FIELDS = ('dynamicType', 'dynamicProperty', 'msg', 'faultCause', 'faultMessage')


def _fault_fields(exc):
    """'method FindAllByUuid, receiver vim.SearchIndex:SearchIndex': the fields a fault type adds, on one line."""
    try:
        names = [p.name for p in exc._GetPropertyList()]  # pylint: disable=protected-access
    except (AttributeError, TypeError):
        return ''
    parts = []
    for name in names:
        value = getattr(exc, name, None)
        if name in _BASE_FIELDS or value is None:
            continue
        moid = getattr(value, '_moId', None)
        if moid:
            shown = '%s:%s' % (type(value).__name__, moid)
        elif isinstance(value, (list, tuple, str)) and not value:
            continue
        else:
            shown = value
        parts.append('%s %s' % (name, shown))
    return ', '.join(sorted(parts))


def from_fault(exc, action, error_class=VsphereError, task=None):
    """Wrap a vim/vmodl fault raised while doing `action` into a typed error with a hint."""
    name = fault_name(exc)
    message = fault_message(exc)
    return error_class('%s failed: %s' % (action, message) if message == name else
                       '%s failed: %s (%s)' % (action, message, name),
                       fault=name, hint=FAULT_HINTS.get(name), task=task)
