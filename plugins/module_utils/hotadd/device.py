# -*- coding: utf-8 -*-
# Copyright: (c) 2026, replicator.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The block device of a hot-added disk on the proxy, found by the disk's UUID (standard library only).

A Linux guest of a VM with disk.EnableUUID = TRUE sees the disk UUID as the SCSI serial / WWN, and udev names the
device after it under /dev/disk/by-id: `wwn-0x6000c29...` and `scsi-36000c29...` (the backing.uuid in lower case,
without dashes). This file is also sent as-is to a remote receiver host (the target proxy) to wait for the device
there, so it imports nothing but the standard library.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os
import time

DEFAULT_DEVICE_DIR = '/dev/disk/by-id'
POLL_SECONDS = 0.2


class DeviceNotFound(Exception):
    """The disk did not show up on this host in time."""


def uuid_hex(disk_uuid):
    """'6000C29a-1b2c-...' -> '6000c29a1b2c...' (32 hex digits); ValueError for anything else."""
    text = str(disk_uuid or '').replace('-', '').replace(' ', '').lower()
    if len(text) != 32 or any(c not in '0123456789abcdef' for c in text):
        raise ValueError('not a disk UUID: %r' % (disk_uuid,))
    return text


def device_names(disk_uuid):
    """The udev by-id names of a VMware disk, the wwn form first."""
    text = uuid_hex(disk_uuid)
    return ['wwn-0x' + text, 'scsi-3' + text]


def present(device_dir, disk_uuid):
    """The device path of the disk in device_dir, or None."""
    for name in device_names(disk_uuid):
        path = os.path.join(device_dir, name)
        if os.path.exists(path):
            return path
    return None


def wait_for_device(device_dir, disk_uuid, timeout=60.0):
    """Wait until the disk's by-id entry appears (udev settles a hot-added disk within seconds); its path.

    Polls every 0.2 s, at most `timeout` seconds (and at most timeout / 0.2 + 1 polls)."""
    deadline = time.monotonic() + max(0.0, float(timeout))
    for _attempt in range(int(max(0.0, float(timeout)) / POLL_SECONDS) + 2):
        path = present(device_dir, disk_uuid)
        if path is not None:
            return path
        if time.monotonic() >= deadline:
            break
        time.sleep(POLL_SECONDS)
    names = ' or '.join(device_names(disk_uuid))
    raise DeviceNotFound('the hot-added disk %s did not appear as %s in %s within %ss on this host'
                         % (disk_uuid, names, device_dir, timeout))


def wait_for_gone(device_dir, disk_uuid, timeout=30.0):
    """Wait until the disk's by-id entries are gone (after a detach); True when gone."""
    deadline = time.monotonic() + max(0.0, float(timeout))
    for _attempt in range(int(max(0.0, float(timeout)) / POLL_SECONDS) + 2):
        if present(device_dir, disk_uuid) is None:
            return True
        if time.monotonic() >= deadline:
            break
        time.sleep(POLL_SECONDS)
    return False
