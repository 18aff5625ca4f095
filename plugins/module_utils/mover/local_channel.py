# -*- coding: utf-8 -*-
# Copyright: (c) 2026, replicator.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The in-process transport of the data mover: sender and receiver in one process, ops are method calls and
payloads are passed by reference.

Unjournaled cycles (the first cycle of a replica, or journal off) take whole DATA blocks straight from the sender's
worker threads (`write_block`: verified and written in the worker that read the block, while its buffer is still
in that core's cache), then booked in block order by the sender's emitter (`book_block`). Journaled cycles apply
every op in order: the journal must see the old content of a range before it is overwritten.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

from ansible_collections.replicator.vsphere.plugins.module_utils.receiver.stream import Receiver


class LocalChannel(object):
    """In-process receiver (see the module docstring)."""

    bytes_sent = 0

    def __init__(self, allowed_roots=None):
        self.rx = Receiver(allowed_roots=allowed_roots)
        self.result = None

    def hello(self, params):
        return self.rx.hello(params)

    @property
    def direct_writes(self):
        """write_block() may be called from worker threads, in any order (known after hello())."""
        return self.rx.cycle is not None and not self.rx.journal

    def write_block(self, offset, length, digest, plain):
        self.rx.write_unjournaled(offset, length, digest, plain)

    def book_block(self, offset, length, digest):
        self.rx.book_written(offset, length, digest)

    def data(self, offset, length, digest, payload, compressed, partial=False):
        self.rx.apply_data(offset, length, digest, payload, compressed, partial=partial)

    def zero(self, offset, length, digest, partial=False):
        self.rx.apply_zero(offset, length, digest, partial=partial)

    def copy(self, offset, length, digest, source, src_offset):
        self.rx.apply_copy(offset, length, digest, source, src_offset)

    def end(self, info):
        need = self.rx.finish()
        if need:
            return need
        self.result = self.rx.commit(info.get('change_id'), meta=info.get('meta'), retention=info.get('retention'))
        return []

    def abort(self, message=''):
        self.rx.abort()

    def close(self):
        self.rx.close()
