# -*- coding: utf-8 -*-
# Copyright: (c) 2026, replicator.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""QueryChangedDiskAreas, paginated to the end of the disk as ESXi requires."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

try:
    from pyVmomi import vim, vmodl
except ImportError:  # pragma: no cover - the client reports the missing library
    vim = vmodl = None

from ansible_collections.replicator.vsphere.plugins.module_utils.vsphere.errors import VsphereError, from_fault

# A reply that does not advance would loop forever; real hosts return at least one page per call.
MAX_CALLS = 1000000


class CbtUnavailable(VsphereError):
    """vSphere cannot answer for this changeId (unknown, from before a CBT reset, or CBT off)."""


def changed_areas(vm, snapshot, device_key, capacity, change_id):
    """[(start, length)] changed since `change_id` ('*' = all allocated areas), and the number of calls made.

    Raises CbtUnavailable on FileFault (the caller falls back to digest comparison), VsphereError otherwise.
    """
    areas, offset, calls = [], 0, 0
    while offset < capacity:
        if calls >= MAX_CALLS:
            raise VsphereError('QueryChangedDiskAreas made no progress at offset %d of disk %s' % (offset, device_key))
        try:
            info = vm.QueryChangedDiskAreas(snapshot=snapshot, deviceKey=device_key, startOffset=offset,
                                            changeId=change_id)
        except vim.fault.FileFault as exc:
            raise from_fault(exc, 'Querying changed areas of disk %s since changeId %s' % (device_key, change_id),
                             CbtUnavailable)
        except (vim.fault.VimFault, vmodl.MethodFault) as exc:
            raise from_fault(exc, 'Querying changed areas of disk %s' % device_key)
        calls += 1
        areas.extend((area.start, area.length) for area in info.changedArea or [])
        end = info.startOffset + info.length
        if info.length <= 0 or end <= offset:
            raise VsphereError('QueryChangedDiskAreas returned no progress at offset %d of disk %s'
                               % (offset, device_key), fault='InvalidResponse')
        offset = end
    return areas, calls
