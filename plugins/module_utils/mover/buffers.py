# -*- coding: utf-8 -*-
# Copyright: (c) 2026, replicator.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A fixed pool of reusable block buffers, so the data path allocates no new block-sized object per block.

Buffers are bytearrays (block-sized allocations come from mmap in the C allocator, i.e. page-backed): unlike a
memoryview over an mmap, `bytearray == bytes` is a memcmp, which keeps the all-zero test at memory speed."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import threading

try:
    import queue
except ImportError:  # pragma: no cover
    import Queue as queue  # pylint: disable=import-error


class BufferPool(object):
    """count buffers of size bytes; get() blocks until one is free (or raises after timeout seconds)."""

    def __init__(self, count, size):
        if count < 1 or size < 1:
            raise ValueError('a buffer pool needs at least one buffer of at least one byte')
        self.size = size
        self.count = count
        self._free = queue.LifoQueue()
        for _index in range(count):
            self._free.put(bytearray(size))
        self._lock = threading.Lock()
        self.in_use = 0
        self.peak = 0

    def get(self, timeout=None):
        try:
            buf = self._free.get(timeout=timeout)
        except queue.Empty:
            raise RuntimeError('no free buffer after %s seconds' % timeout)
        with self._lock:
            self.in_use += 1
            self.peak = max(self.peak, self.in_use)
        return buf

    def put(self, buf):
        if buf is None:
            return
        with self._lock:
            self.in_use -= 1
        self._free.put(buf)
