# -*- coding: utf-8 -*-
# Copyright: (c) 2026, replicator.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Framed, versioned stream between the sender and a remote receiver (format: docs/wire-format.md).

Each direction starts with an 8-byte stream header (magic b'RVSW', u16 version, u16 flags), then frames:

    48-byte frame header, little-endian:
      u8 op, u8 flags, u16 source, u32 payload length, u64 offset, u64 arg, u32 length, 16 bytes digest,
      u32 crc32 of the 44 bytes before it
    payload (payload-length bytes)
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import fcntl
import json
import os
import stat
import struct
import zlib

MAGIC = b'RVSW'
VERSION = 2
STREAM_HEADER = struct.Struct('<4sHH')
_HEAD = struct.Struct('<BBHIQQI16s')
_CRC = struct.Struct('<I')
FRAME_HEADER_SIZE = _HEAD.size + _CRC.size
MAX_PAYLOAD = 256 * 1024 * 1024
NO_DIGEST = bytes(16)

HELLO, STATE, MAP, DATA, ZERO, COPY, END, NEED, COMMIT, ERROR = range(1, 11)
OP_NAMES = {HELLO: 'HELLO', STATE: 'STATE', MAP: 'MAP', DATA: 'DATA', ZERO: 'ZERO', COPY: 'COPY', END: 'END',
            NEED: 'NEED', COMMIT: 'COMMIT', ERROR: 'ERROR'}
FLAG_ZSTD = 0x01
FLAG_PARTIAL = 0x02      # DATA / ZERO over a range inside one block (version 2)


PIPE_SIZE = 1024 * 1024
_F_SETPIPE_SZ = getattr(fcntl, 'F_SETPIPE_SZ', 1031)


def widen_pipe(fileobj, size=PIPE_SIZE):
    """Ask for a `size` pipe buffer on fileobj (a file object or descriptor) when it is a pipe: a 1 MiB block then
    crosses in one or two reads instead of sixteen 64 KiB ones. Best effort; returns True when it worked."""
    try:
        fd = fileobj if isinstance(fileobj, int) else fileobj.fileno()
        fcntl.fcntl(fd, _F_SETPIPE_SZ, size)
        return True
    except (AttributeError, OSError, ValueError, IOError):
        return False


class WireError(Exception):
    """The stream is truncated, corrupted, or speaks another version."""


class Frame(object):
    __slots__ = ('op', 'flags', 'source', 'offset', 'arg', 'length', 'digest', 'payload')

    def __init__(self, op, flags, source, offset, arg, length, digest, payload):
        self.op = op
        self.flags = flags
        self.source = source
        self.offset = offset
        self.arg = arg
        self.length = length
        self.digest = digest
        self.payload = payload

    @property
    def name(self):
        return OP_NAMES.get(self.op, 'op%d' % self.op)

    def json(self):
        try:
            return json.loads(bytes(self.payload).decode('utf-8'))
        except ValueError as e:
            raise WireError('%s frame carries invalid JSON: %s' % (self.name, e))


def pack_header(op, plen, flags=0, source=0, offset=0, arg=0, length=0, digest=NO_DIGEST):
    head = _HEAD.pack(op, flags, source, plen, offset, arg, length, digest)
    return head + _CRC.pack(zlib.crc32(head) & 0xffffffff)


def stream_header():
    return STREAM_HEADER.pack(MAGIC, VERSION, 0)


class FrameWriter(object):
    """Writes frames to a file descriptor (os.writev, no concatenation of header and payload)."""

    def __init__(self, fd):
        self.fd = fd
        self.bytes = 0
        self.frames = 0
        # a pipe (a local receiver's or ssh's stdin) takes file pages by splice: no copy through our buffers
        try:
            self.can_splice = hasattr(os, 'splice') and stat.S_ISFIFO(os.fstat(fd).st_mode)
        except OSError:
            self.can_splice = False
        self._write_all([stream_header()])

    def _write_all(self, parts):
        views = [memoryview(p).cast('B') for p in parts if len(p)]
        while views:
            n = os.writev(self.fd, views)
            self.bytes += n
            while n and views:
                if n >= len(views[0]):
                    n -= len(views[0])
                    views.pop(0)
                else:
                    views[0] = views[0][n:]
                    n = 0

    def frame(self, op, payload=b'', **fields):
        self._write_all([pack_header(op, len(payload), **fields), payload])
        self.frames += 1

    def frame_from_file(self, op, src_fd, src_offset, plen, **fields):
        """A frame whose payload is `plen` bytes of file src_fd at src_offset, spliced from the page cache into the
        pipe (can_splice) instead of being copied through a buffer."""
        self._write_all([pack_header(op, plen, **fields)])
        pos, end = src_offset, src_offset + plen
        while pos < end:
            n = os.splice(src_fd, self.fd, end - pos, offset_src=pos)
            if n <= 0:
                raise WireError('the source file ended at offset %d, inside a %d-byte payload' % (pos, plen))
            pos += n
            self.bytes += n
        self.frames += 1

    def json(self, op, obj, **fields):
        self.frame(op, json.dumps(obj, sort_keys=True).encode('utf-8'), **fields)


class FrameReader(object):
    """Reads frames from a binary file object with readinto(). DATA payloads land in a reused buffer: a frame's
    payload is valid until the next read_frame() call."""

    def __init__(self, rfile, max_payload=MAX_PAYLOAD):
        self.rfile = rfile
        self.max_payload = max_payload
        self.bytes = 0
        self._head = bytearray(FRAME_HEADER_SIZE)
        self._buf = bytearray(0)
        self._started = False

    def _fill(self, view, what):
        pos = 0
        n = len(view)
        while pos < n:
            got = self.rfile.readinto(view[pos:])
            if not got:
                if pos == 0 and what == 'frame header':
                    return False
                raise WireError('stream truncated: %d of %d bytes of a %s' % (pos, n, what))
            pos += got
        self.bytes += n
        return True

    def _start(self):
        raw = bytearray(STREAM_HEADER.size)
        if not self._fill(memoryview(raw), 'frame header'):
            raise WireError('stream ended before its header (the peer exited or could not start)')
        magic, version, _flags = STREAM_HEADER.unpack(raw)
        if magic != MAGIC:
            raise WireError('not a replicator stream (magic %r); the peer printed something else' % bytes(magic))
        if version != VERSION:
            raise WireError('stream version %d is not supported (this side speaks %d): update both sides'
                            % (version, VERSION))
        self._started = True

    def read_frame(self, into=None):
        """Next Frame, or None at a clean end of stream.

        into: a caller-owned buffer for a DATA payload (used when it is large enough, else a new one is allocated),
        so the frame stays valid after the next read_frame() call (a reader thread handing frames to a writer)."""
        if not self._started:
            self._start()
        head = self._head
        if not self._fill(memoryview(head), 'frame header'):
            return None
        (crc,) = _CRC.unpack_from(head, _HEAD.size)
        if zlib.crc32(memoryview(head)[:_HEAD.size]) & 0xffffffff != crc:
            raise WireError('corrupted frame header (crc mismatch) after %d bytes of stream' % self.bytes)
        op, flags, source, plen, offset, arg, length, digest = _HEAD.unpack_from(head, 0)
        if op not in OP_NAMES:
            raise WireError('unknown frame op %d' % op)
        if plen > self.max_payload:
            raise WireError('%s frame payload of %d bytes exceeds the limit %d' % (OP_NAMES[op], plen, self.max_payload))
        if op == DATA and into is not None:
            payload = memoryview(into)[:plen] if plen <= len(into) else memoryview(bytearray(plen))
        elif op == DATA:
            if len(self._buf) < plen:
                self._buf = bytearray(plen)
            payload = memoryview(self._buf)[:plen]
        else:
            payload = memoryview(bytearray(plen))
        self._fill(payload, '%s payload' % OP_NAMES[op])
        return Frame(op, flags, source, offset, arg, length, digest, payload)

    def expect(self, *ops):
        """Read one frame; a peer ERROR frame or an unexpected op raises WireError."""
        frame = self.read_frame()
        if frame is None:
            raise WireError('stream ended while waiting for %s' % '/'.join(OP_NAMES[o] for o in ops))
        if frame.op == ERROR and ERROR not in ops:
            raise PeerError(frame.json().get('message', 'unknown error'))
        if frame.op not in ops:
            raise WireError('expected %s, got %s' % ('/'.join(OP_NAMES[o] for o in ops), frame.name))
        return frame


class PeerError(WireError):
    """The peer reported an error (ERROR frame)."""
