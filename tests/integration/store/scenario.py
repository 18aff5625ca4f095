# -*- coding: utf-8 -*-
# Copyright: (c) 2026, replicator.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Deterministic replication cycles shared by the crash tests and the process they kill."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import hashlib
import os
import random

from ansible_collections.replicator.vsphere.plugins.module_utils.datapath.endpoint import FileEndpoint

SIZE = 2 * 1024 * 1024 + 3 * 512      # last 64 KiB block is short
BS = 64 * 1024
RETENTION = 3


def open_target(path, create=False):
    if create:
        with open(path, 'wb') as f:
            f.truncate(SIZE)
    return FileEndpoint(path, writable=True)


def image_digest(target):
    return hashlib.sha256(os.pread(target.fd, target.size, 0)).hexdigest()


def cycle_batches(seed, batches=6, per_batch=3):
    """Batches of (offset, data) writes: random, compressible and zero data, 512-byte aligned, odd sizes."""
    rnd = random.Random(seed)
    out = []
    for dummy in range(batches):
        batch = []
        for dummy2 in range(per_batch):
            off = rnd.randrange(SIZE // 512) * 512
            n = min(SIZE - off, rnd.choice([512, 4096, BS, BS + 1536, 150 * 1024]))
            kind = rnd.randrange(3)
            if kind == 0:
                data = bytes(n)
            elif kind == 1:
                data = bytes([rnd.randrange(1, 256)]) * n
            else:
                data = rnd.getrandbits(8 * n).to_bytes(n, 'little')
            batch.append((off, data))
        out.append(batch)
    return out


def apply_batches(image, batches):
    for batch in batches:
        for off, data in batch:
            image[off:off + len(data)] = data


def run_cycle(store, target, cycle_id, seed, journal=True):
    cycle = store.begin(target, cycle_id=cycle_id, journal=journal)
    for batch in cycle_batches(seed):
        cycle.preserve_many([(off, len(data)) for off, data in batch])
        for off, data in batch:
            if data.count(0) == len(data):
                target.write_zeroes(off, len(data))
            else:
                target.pwrite(off, data)
    return cycle.commit('52 3e 00 %s/%d' % (cycle_id, seed), b'digest-map-' + cycle_id.encode(), target.size, BS,
                        retention=RETENTION)
