# -*- coding: utf-8 -*-
# Copyright: (c) 2026, replicator.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Virtual disks out of an already-read `config.hardware.device` list: no SOAP calls here.

Used by every module that reports or acts on disks, so the per-disk facts have one shape everywhere.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import re

_DATASTORE_PATH = re.compile(r'^\[(?P<datastore>[^\]]+)\]\s*(?P<path>.*)$')


def split_datastore_path(path):
    """'[ds1] vm/disk.vmdk' -> ('ds1', 'vm/disk.vmdk'); a path with no datastore -> (None, path)."""
    match = _DATASTORE_PATH.match(path or '')
    if not match:
        return None, path
    return match.group('datastore'), match.group('path')


def _is_disk(device):
    return type(device).__name__.endswith('VirtualDisk')


def backing_chain(backing):
    """File names from the disk's current backing down to its base: [current, parent, ..., base]."""
    chain = []
    while backing is not None:
        chain.append(getattr(backing, 'fileName', None))
        backing = getattr(backing, 'parent', None)
    return chain


def untrackable_reason(device):
    """Why CBT cannot track this disk (independent mode, physical RDM), or None."""
    backing = device.backing
    mode = getattr(backing, 'diskMode', '') or ''
    if mode.startswith('independent'):
        return 'independent disk (%s): vSphere does not snapshot or track it' % mode
    if getattr(backing, 'compatibilityMode', None) == 'physicalMode':
        return 'physical-mode RDM: vSphere does not snapshot or track it'
    return None


def disk_facts(devices):
    """[{key, label, unit, controller_key, capacity_bytes, file, datastore, chain, uuid, change_id, mode,
    untrackable}] for every virtual disk in a device list, in device-key order."""
    disks = []
    for device in devices or []:
        if not _is_disk(device):
            continue
        backing = device.backing
        capacity = getattr(device, 'capacityInBytes', None) or (device.capacityInKB or 0) * 1024
        datastore, _path = split_datastore_path(getattr(backing, 'fileName', None))
        disks.append({
            'key': device.key,
            'label': device.deviceInfo.label if device.deviceInfo is not None else 'disk %s' % device.key,
            'unit': device.unitNumber,
            'controller_key': device.controllerKey,
            'capacity_bytes': capacity,
            'file': getattr(backing, 'fileName', None),
            'datastore': datastore,
            'chain': backing_chain(backing),
            'uuid': getattr(backing, 'uuid', None),
            'change_id': getattr(backing, 'changeId', None),
            'mode': getattr(backing, 'diskMode', None),
            'untrackable': untrackable_reason(device),
        })
    disks.sort(key=lambda disk: disk['key'])
    return disks
