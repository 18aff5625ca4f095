# -*- coding: utf-8 -*-
# Copyright: (c) 2026, replicator.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Restore-point journal: an append-only file of checksummed records holding the OLD content of target ranges.

File layout (all integers little-endian, see docs/restore-points.md):

    file header (32 bytes): magic b'RVSJRNL1', u16 version, u16 checksum algorithm (1 xxh3-64, 2 crc32),
                            u32 flags (0), u64 reserved, u32 reserved, u32 crc32 of the 28 bytes before
    record header (40 bytes): magic b'RJR1', u32 flags (1 zero, 2 zstd, 4 seal), u64 offset, u32 length,
                              u32 stored length, u64 sequence number, u64 checksum of header[:32] + payload
    payload: stored-length bytes (zstd frame or raw old bytes; empty for zero records)

A record is only trusted when its magic, sequence number and checksum are right and it is complete. Everything
from the first bad record on is a torn tail: ignored when reading an open journal (it was never fsynced, so the
caller never overwrote the bytes it describes), an error in a sealed journal.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os
import struct
import zlib

try:
    import xxhash
    HAS_XXHASH = True
except ImportError:
    xxhash = None
    HAS_XXHASH = False

from ansible_collections.replicator.vsphere.plugins.module_utils.datapath.intervals import IntervalSet
from ansible_collections.replicator.vsphere.plugins.module_utils.datapath.zstd_loader import HAS_ZSTD, zstandard

FILE_MAGIC = b'RVSJRNL1'
FILE_VERSION = 1
FILE_HEADER = struct.Struct('<8sHHIQI')      # + u32 crc32 = 32 bytes
FILE_HEADER_SIZE = FILE_HEADER.size + 4
RECORD_MAGIC = b'RJR1'
RECORD_HEADER = struct.Struct('<4sIQIIQ')    # + u64 checksum = 40 bytes
RECORD_HEADER_SIZE = RECORD_HEADER.size + 8
SEAL_PAYLOAD = struct.Struct('<QQ')          # data records, old bytes covered

FLAG_ZERO = 1
FLAG_ZSTD = 2
FLAG_SEAL = 4
KNOWN_FLAGS = FLAG_ZERO | FLAG_ZSTD | FLAG_SEAL

CHECKSUM_XXH3 = 1
CHECKSUM_CRC32 = 2

DEFAULT_CHUNK = 1024 * 1024
MAX_RECORD = 16 * 1024 * 1024
ZSTD_LEVEL = 1


class JournalError(Exception):
    """A journal file is missing, unreadable or corrupt (the message names the file and what to do)."""


def fsync_dir(path):
    """fsync the directory holding path (makes a create / rename / unlink durable)."""
    fd = os.open(os.path.dirname(os.path.abspath(path)) or '.', os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _checksum(algo, header, payload):
    if algo == CHECKSUM_XXH3:
        if not HAS_XXHASH:
            raise JournalError('journal records use xxh3-64 checksums but the python xxhash module is not installed')
        h = xxhash.xxh3_64()
        h.update(header)
        h.update(payload)
        return h.intdigest()
    return zlib.crc32(payload, zlib.crc32(header)) & 0xffffffff


def _pack_file_header(algo):
    head = FILE_HEADER.pack(FILE_MAGIC, FILE_VERSION, algo, 0, 0, 0)
    return head + struct.pack('<I', zlib.crc32(head) & 0xffffffff)


def _read_exact(f, n):
    data = f.read(n)
    return data if data is not None else b''


class Record(object):
    """One journal record: old content of [offset, offset + length) (payload None for zero records)."""

    __slots__ = ('offset', 'length', 'flags', 'payload', 'stored')

    def __init__(self, offset, length, flags, payload, stored):
        self.offset = offset
        self.length = length
        self.flags = flags
        self.payload = payload
        self.stored = stored

    @property
    def is_zero(self):
        return bool(self.flags & FLAG_ZERO)


class JournalReader(object):
    """Stream the records of one journal, one at a time (memory bounded by one record).

    strict=True (sealed, committed journals): any bad record, or a missing seal, raises JournalError.
    strict=False (open journals of an interrupted cycle or a redo journal): stop at the first bad record; `end` is
    the file offset where the valid part ends and `ignored_bytes` what follows it.
    """

    def __init__(self, path, strict=True, decode=True):
        self.path = path
        self.strict = strict
        self.decode = decode
        self.sealed = False
        self.records = 0
        self.bytes_covered = 0
        self.end = 0
        self.ignored_bytes = 0
        self.problem = None
        self.algo = None

    def _fail(self, message):
        self.problem = message
        if self.strict:
            raise JournalError('journal %s is corrupt: %s; the restore points that need it cannot be reached '
                               '(prune them or re-seed the replica)' % (self.path, message))

    def __iter__(self):
        try:
            f = open(self.path, 'rb')
        except (IOError, OSError) as e:
            raise JournalError('cannot open journal %s: %s' % (self.path, e))
        with f:
            size = os.fstat(f.fileno()).st_size
            head = _read_exact(f, FILE_HEADER_SIZE)
            if len(head) < FILE_HEADER_SIZE or head[:8] != FILE_MAGIC or \
                    struct.unpack('<I', head[-4:])[0] != zlib.crc32(head[:-4]) & 0xffffffff:
                self._fail('bad or incomplete file header')
                self.ignored_bytes = size
                return
            fields = FILE_HEADER.unpack(head[:-4])
            version, algo = fields[1], fields[2]
            if version != FILE_VERSION or algo not in (CHECKSUM_XXH3, CHECKSUM_CRC32):
                raise JournalError('journal %s has unsupported version %d / checksum %d' % (self.path, version, algo))
            self.algo = algo
            self.end = FILE_HEADER_SIZE
            decomp = None
            seq = 0
            while True:
                pos = self.end
                raw = _read_exact(f, RECORD_HEADER_SIZE)
                if not raw:
                    break
                problem = None
                if len(raw) < RECORD_HEADER_SIZE:
                    problem = 'incomplete record header at byte %d' % pos
                else:
                    magic, flags, offset, length, stored, rseq = RECORD_HEADER.unpack(raw[:RECORD_HEADER.size])
                    if magic != RECORD_MAGIC or flags & ~KNOWN_FLAGS or stored > MAX_RECORD or length > MAX_RECORD:
                        problem = 'bad record header at byte %d' % pos
                    elif rseq != seq:
                        problem = 'record at byte %d has sequence %d, expected %d' % (pos, rseq, seq)
                if problem is None:
                    payload = _read_exact(f, stored)
                    if len(payload) < stored:
                        problem = 'incomplete record payload at byte %d' % pos
                    elif _checksum(algo, raw[:RECORD_HEADER.size], payload) != struct.unpack('<Q', raw[-8:])[0]:
                        problem = 'checksum mismatch in record at byte %d' % pos
                if problem is not None:
                    self._fail(problem)
                    self.ignored_bytes = size - pos
                    return
                self.end = pos + RECORD_HEADER_SIZE + stored
                seq += 1
                if flags & FLAG_SEAL:
                    self.sealed = True
                    if self.end != size:
                        self._fail('data after the seal record')
                    return
                self.records += 1
                self.bytes_covered += length
                data = None
                if self.decode and not flags & FLAG_ZERO:
                    if flags & FLAG_ZSTD:
                        if not HAS_ZSTD:
                            raise JournalError('journal %s is zstd-compressed but the python zstandard module is '
                                               'not installed' % self.path)
                        if decomp is None:
                            decomp = zstandard.ZstdDecompressor()
                        data = decomp.decompress(payload, max_output_size=length)
                    else:
                        data = payload
                    if len(data) != length:
                        self._fail('record at byte %d decodes to %d bytes, expected %d' % (pos, len(data), length))
                        return
                yield Record(offset, length, flags, data, stored)
        if self.strict and not self.sealed:
            self._fail('the journal is not sealed (its cycle never committed)')


def replay(path, target, strict=True, batch_bytes=8 * DEFAULT_CHUNK, before_batch=None):
    """Write the old content stored in journal `path` back onto `target`.

    Records of one journal never overlap, so the order inside a journal does not matter. `before_batch(ranges)` is
    called before each batch of writes (used to save redo data first). Returns the reader (counts, torn tail info).
    """
    reader = JournalReader(path, strict=strict)
    batch = []
    size = 0
    for rec in reader:
        batch.append(rec)
        size += rec.length if rec.payload is not None else 0
        if size >= batch_bytes or len(batch) >= 256:
            _apply(batch, target, before_batch)
            batch = []
            size = 0
    if batch:
        _apply(batch, target, before_batch)
    return reader


def _apply(batch, target, before_batch):
    if before_batch is not None:
        before_batch([(r.offset, r.length) for r in batch])
    for rec in batch:
        if rec.payload is None:
            target.write_zeroes(rec.offset, rec.length)
        else:
            target.pwrite(rec.offset, rec.payload)


class JournalWriter(object):
    """Append old target content to a journal before the caller overwrites it.

    Only the first preservation of a byte is kept (an IntervalSet remembers what is preserved). Each
    preserve_many() call ends with one fsync, so the records are durable before it returns.
    """

    def __init__(self, path, target, chunk=DEFAULT_CHUNK, compress=True):
        if chunk <= 0 or chunk > MAX_RECORD:
            raise ValueError('journal chunk must be 1..%d bytes' % MAX_RECORD)
        self.path = path
        self.target = target
        self.chunk = chunk
        self.preserved = IntervalSet()
        self.records = 0
        self.bytes_covered = 0
        self.bytes_stored = 0
        self.algo = CHECKSUM_XXH3 if HAS_XXHASH else CHECKSUM_CRC32
        self._seq = 0
        self._fd = None
        self._buf = bytearray(chunk)
        self._zero = bytes(chunk)
        self._cctx = zstandard.ZstdCompressor(level=ZSTD_LEVEL) if (compress and HAS_ZSTD) else None
        self.sealed = False

    @classmethod
    def create(cls, path, target, **kwargs):
        """Create a new, empty journal (fails if the file exists)."""
        self = cls(path, target, **kwargs)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, _pack_file_header(self.algo))
            os.fsync(fd)
        except Exception:
            os.close(fd)
            raise
        self._fd = fd
        fsync_dir(path)
        return self

    @classmethod
    def open_append(cls, path, target, **kwargs):
        """Reopen an unsealed journal: drop a torn tail, rebuild the preserved set, continue appending."""
        if not os.path.exists(path):
            return cls.create(path, target, **kwargs)
        reader = JournalReader(path, strict=False, decode=False)
        self = cls(path, target, **kwargs)
        for rec in reader:
            self.preserved.add(rec.offset, rec.offset + rec.length)
            self.bytes_stored += rec.stored
        if reader.sealed:
            raise JournalError('journal %s is sealed and cannot be appended to' % path)
        if reader.algo is None:
            # not even a valid file header: nothing was ever durable in it; start over
            os.unlink(path)
            return cls.create(path, target, **kwargs)
        self.algo = reader.algo
        self.records = self._seq = reader.records
        self.bytes_covered = reader.bytes_covered
        fd = os.open(path, os.O_WRONLY)
        try:
            if reader.ignored_bytes:
                os.ftruncate(fd, reader.end)
                os.fsync(fd)
            os.lseek(fd, reader.end, os.SEEK_SET)
        except Exception:
            os.close(fd)
            raise
        self._fd = fd
        return self

    def _append(self, flags, offset, length, payload):
        head = RECORD_HEADER.pack(RECORD_MAGIC, flags, offset, length, len(payload), self._seq)
        rec = head + struct.pack('<Q', _checksum(self.algo, head, payload))
        view = memoryview(rec + bytes(payload)) if len(payload) < 65536 else None
        if view is not None:
            self._write_all(view)
        else:
            self._write_all(memoryview(rec))
            self._write_all(memoryview(payload))
        self._seq += 1
        self.bytes_stored += RECORD_HEADER_SIZE + len(payload)

    def _write_all(self, view):
        while len(view):
            n = os.write(self._fd, view)
            view = view[n:]

    def _preserve_piece(self, start, end):
        """Journal [start, end) (not yet preserved) in chunk-sized records."""
        known_zero = []
        extents = getattr(self.target, 'extents', None)
        if extents is not None:
            for off, length, is_zero in extents(start, end - start):
                if is_zero:
                    known_zero.append((max(off, start), min(off + length, end)))
        known = IntervalSet(known_zero)
        pos = start
        while pos < end:
            n = min(self.chunk, end - pos)
            if known.covers(pos, pos + n):
                self._append(FLAG_ZERO, pos, n, b'')
            else:
                view = memoryview(self._buf)[:n]
                self.target.preadinto(pos, view)
                if (self._buf == self._zero) if n == self.chunk else (view == memoryview(self._zero)[:n]):
                    self._append(FLAG_ZERO, pos, n, b'')
                else:
                    packed = self._cctx.compress(view) if self._cctx is not None else None
                    if packed is not None and len(packed) < n:
                        self._append(FLAG_ZSTD, pos, n, packed)
                    else:
                        self._append(0, pos, n, view)
            self.records += 1
            self.bytes_covered += n
            pos += n

    def preserve_many(self, ranges):
        """Save the current content of every not-yet-preserved byte of `ranges` ((offset, length) pairs) and fsync.

        Returns the number of bytes newly preserved.
        """
        if self._fd is None or self.sealed:
            raise JournalError('journal %s is not open for appending' % self.path)
        todo = IntervalSet()
        for offset, length in ranges:
            if offset < 0 or length < 0:
                raise ValueError('invalid range (%d, %d)' % (offset, length))
            for s, e in self.preserved.missing(offset, offset + length):
                todo.add(s, e)
        if not len(todo):
            return 0
        for s, e in todo:
            self._preserve_piece(s, e)
        os.fsync(self._fd)
        for s, e in todo:
            self.preserved.add(s, e)
        return todo.total

    def preserve(self, offset, length):
        return self.preserve_many([(offset, length)])

    def seal(self):
        """Append the seal record and fsync: the journal is complete and read strictly from now on."""
        if self.sealed:
            return
        self._append(FLAG_SEAL, 0, 0, SEAL_PAYLOAD.pack(self.records, self.bytes_covered))
        os.fsync(self._fd)
        self.sealed = True
        self.close()

    def close(self):
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
