# -*- coding: utf-8 -*-
# Copyright: (c) 2026, replicator.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Hot-add decisions as pure functions (no pyVmomi, no I/O): attachment markers, which marker is a leftover of a
dead run, which proxy of a pool takes a disk, which SCSI slot it gets.

A disk we attach to a proxy VM carries a marker in the proxy's extraConfig, `replicator.hotadd.<disk uuid hex>`,
whose value records the disk file, its owner VM, the mode, and the run that attached it (host, boot, process,
lease). Only disks with our marker are ever detached by us.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json

MARKER_PREFIX = 'replicator.hotadd.'
# A marker written by another host is a leftover once this old (a copy that long is not alive any more).
LEASE_SECONDS = 24 * 3600
SCSI_UNITS = [u for u in range(16) if u != 7]  # unit 7 is the controller itself


class SelectionError(ValueError):
    """No proxy of the pool can take the disk; the message lists why each was passed over."""


def marker_key(uuid_hex):
    return MARKER_PREFIX + uuid_hex


def encode_marker(record):
    return json.dumps(record, sort_keys=True, separators=(',', ':'))


def markers(extra_config):
    """{uuid hex: record} of our markers in an extraConfig list of (key, value) pairs or OptionValues."""
    out = {}
    for item in extra_config or ():
        key, value = (item if isinstance(item, tuple) else (getattr(item, 'key', None), getattr(item, 'value', None)))
        if not key or not key.startswith(MARKER_PREFIX) or not value:
            continue
        try:
            record = json.loads(value)
        except ValueError:
            record = None
        out[key[len(MARKER_PREFIX):]] = record if isinstance(record, dict) else {'unreadable': value}
    return out


def is_leftover(record, now, here, alive):
    """Whether a marker belongs to a run that cannot be running any more.

    here: {'host', 'boot'} of this machine; alive(pid, start): whether that process of this boot still runs.
    Same host and boot: leftover when its process is gone. Same host, other boot: leftover. Other host: leftover
    once its lease expired. An unreadable marker is never ours to judge: not a leftover."""
    if not record or 'unreadable' in record:
        return False
    if record.get('host') == here.get('host'):
        if record.get('boot') != here.get('boot'):
            return True
        return not alive(record.get('pid'), record.get('start'))
    return (record.get('expires') or 0) <= now


def free_slot(controllers, used):
    """(controller key, unit number) of the first free SCSI slot.

    controllers: [(key, bus number)] of the proxy's SCSI controllers; used: set of (controller key, unit) taken.
    None when every slot is taken."""
    for key, _bus in sorted(controllers, key=lambda c: (c[1], c[0])):
        for unit in SCSI_UNITS:
            if (key, unit) not in used:
                return key, unit
    return None


def choose_proxy(candidates, limit, prefer=None):
    """The proxy to attach a disk to.

    candidates: [{'name', 'moid', 'reasons': [why it cannot take the disk], 'attached': disks we attached to it}],
    in pool order. Eligible: no reasons and fewer than `limit` attached. Picks `prefer` (a moid, the proxy this
    module runs on) when eligible, else the least loaded, pool order breaking ties. Raises SelectionError."""
    why = []
    eligible = []
    for index, cand in enumerate(candidates):
        reasons = list(cand.get('reasons') or ())
        if cand.get('attached', 0) >= limit:
            reasons.append('already has %d hot-added disks (limit %d)' % (cand.get('attached', 0), limit))
        if reasons:
            why.append('%s: %s' % (cand.get('name'), '; '.join(reasons)))
        else:
            eligible.append((cand.get('attached', 0), index, cand))
    if not eligible:
        raise SelectionError('no proxy of the pool can take the disk (%s)'
                             % ('; '.join(why) if why else 'the pool is empty'))
    for _load, _index, cand in eligible:
        if prefer and cand.get('moid') == prefer:
            return cand
    return min(eligible, key=lambda e: (e[0], e[1]))[2]


def write_holders(vms, file_name, exclude=()):
    """Names of VMs holding `file_name` open for writing: a powered-on VM whose current disk is that file in a
    persistent mode, or any VM with our marker of that file in write mode.

    vms: [{'name', 'moid', 'powered_on', 'disks': [{'file', 'mode'}], 'markers': {hex: record}}]."""
    holders = []
    for vm in vms:
        if vm.get('moid') in exclude:
            continue
        marked = any(r.get('file') == file_name and r.get('mode') == 'rw' for r in (vm.get('markers') or {}).values())
        opened = vm.get('powered_on') and any(d.get('file') == file_name and 'nonpersistent' not in (d.get('mode') or '')
                                              for d in vm.get('disks') or ())
        if marked or opened:
            holders.append(vm.get('name'))
    return sorted(holders)
