# -*- coding: utf-8 -*-
# Copyright: (c) 2026, replicator.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os

import pytest

from ansible_collections.replicator.vsphere.plugins.module_utils.hotadd.device import (
    DeviceNotFound, device_names, present, uuid_hex, wait_for_device,
)
from ansible_collections.replicator.vsphere.plugins.module_utils.hotadd.selection import (
    SelectionError, choose_proxy, encode_marker, free_slot, is_leftover, marker_key, markers, write_holders,
)

UUID = '6000C29a-1b2c-3d4e-5f60-718293a4b5c6'
HERE = {'host': 'proxy1', 'boot': 'boot-a'}


def test_device_names_follow_udev():
    assert uuid_hex(UUID) == '6000c29a1b2c3d4e5f60718293a4b5c6'
    assert device_names(UUID) == ['wwn-0x6000c29a1b2c3d4e5f60718293a4b5c6', 'scsi-36000c29a1b2c3d4e5f60718293a4b5c6']
    with pytest.raises(ValueError):
        uuid_hex('not-a-uuid')


def test_device_found_by_either_name(tmp_path):
    assert present(str(tmp_path), UUID) is None
    (tmp_path / ('scsi-3' + uuid_hex(UUID))).write_bytes(b'')
    assert present(str(tmp_path), UUID).endswith('scsi-36000c29a1b2c3d4e5f60718293a4b5c6')
    (tmp_path / ('wwn-0x' + uuid_hex(UUID))).write_bytes(b'')
    assert os.path.basename(wait_for_device(str(tmp_path), UUID, timeout=1)).startswith('wwn-0x')


def test_missing_device_gives_up_with_the_names(tmp_path):
    with pytest.raises(DeviceNotFound) as err:
        wait_for_device(str(tmp_path), UUID, timeout=0.3)
    assert 'wwn-0x6000c29a' in str(err.value) and str(tmp_path) in str(err.value)


def test_markers_round_trip_and_ignore_others():
    record = {'file': '[ds] a/a.vmdk', 'mode': 'ro', 'pid': 5}
    extra = [(marker_key('abc'), encode_marker(record)), ('disk.EnableUUID', 'TRUE'), (marker_key('dead'), ''),
             (marker_key('bad'), '{not json')]
    found = markers(extra)
    assert found['abc'] == record
    assert 'dead' not in found and found['bad'] == {'unreadable': '{not json'}


@pytest.mark.parametrize('record, alive, leftover', [
    ({'host': 'proxy1', 'boot': 'boot-a', 'pid': 10, 'start': '5'}, True, False),    # our host, process runs
    ({'host': 'proxy1', 'boot': 'boot-a', 'pid': 10, 'start': '5'}, False, True),    # our host, process gone
    ({'host': 'proxy1', 'boot': 'boot-old', 'pid': 10, 'expires': 10 ** 10}, True, True),  # rebooted since
    ({'host': 'other', 'boot': 'x', 'pid': 10, 'expires': 1000}, True, True),        # other host, lease over
    ({'host': 'other', 'boot': 'x', 'pid': 10, 'expires': 5000}, False, False),      # other host, lease runs
    ({'unreadable': 'garbage'}, False, False),                                       # not ours to judge
])
def test_leftover(record, alive, leftover):
    assert is_leftover(record, 2000, HERE, lambda pid, start: alive) is leftover


def test_free_slot_skips_the_controller_unit_and_taken_ones():
    assert free_slot([(1000, 0)], set()) == (1000, 0)
    used = set((1000, u) for u in range(7))
    assert free_slot([(1000, 0)], used) == (1000, 8)
    full = set((1000, u) for u in range(16))
    assert free_slot([(1000, 0)], full) is None
    assert free_slot([(1001, 1), (1000, 0)], full) == (1001, 0)
    assert free_slot([], set()) is None


def _cand(name, attached=0, reasons=()):
    return {'name': name, 'moid': 'vm-' + name, 'attached': attached, 'reasons': list(reasons)}


def test_choose_least_loaded_then_pool_order():
    assert choose_proxy([_cand('a', 2), _cand('b', 1), _cand('c', 1)], limit=4)['name'] == 'b'
    assert choose_proxy([_cand('a'), _cand('b')], limit=4)['name'] == 'a'


def test_choose_respects_the_limit_and_reasons():
    with pytest.raises(SelectionError) as err:
        choose_proxy([_cand('a', 1), _cand('b', 0, ['its host does not see datastore ds1'])], limit=1)
    text = str(err.value)
    assert 'a: already has 1 hot-added disks (limit 1)' in text and 'b: its host does not see datastore ds1' in text
    assert choose_proxy([_cand('a', 1), _cand('b', 0)], limit=1)['name'] == 'b'
    with pytest.raises(SelectionError, match='pool is empty'):
        choose_proxy([], limit=4)


def test_choose_prefers_this_proxy_when_eligible():
    pool = [_cand('a'), _cand('b', 2)]
    assert choose_proxy(pool, limit=4, prefer='vm-b')['name'] == 'b'
    assert choose_proxy(pool, limit=2, prefer='vm-b')['name'] == 'a'  # b is full


def test_write_holders():
    disk = '[ds] r/r.vmdk'
    vms = [
        {'name': 'replica', 'moid': 'vm-1', 'powered_on': False, 'disks': [{'file': disk, 'mode': 'persistent'}]},
        {'name': 'running', 'moid': 'vm-2', 'powered_on': True, 'disks': [{'file': '[ds] x.vmdk', 'mode': 'persistent'}]},
        {'name': 'reader', 'moid': 'vm-3', 'powered_on': True,
         'disks': [{'file': disk, 'mode': 'independent_nonpersistent'}]},
    ]
    assert write_holders(vms, disk) == []
    vms.append({'name': 'writer', 'moid': 'vm-4', 'powered_on': True,
                'disks': [{'file': disk, 'mode': 'independent_persistent'}]})
    vms.append({'name': 'marked', 'moid': 'vm-5', 'powered_on': False, 'disks': [],
                'markers': {'ab': {'file': disk, 'mode': 'rw'}}})
    assert write_holders(vms, disk) == ['marked', 'writer']
    assert write_holders(vms, disk, exclude=('vm-4',)) == ['marked']
