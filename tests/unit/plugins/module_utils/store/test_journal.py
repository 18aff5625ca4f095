# -*- coding: utf-8 -*-
# Copyright: (c) 2026, replicator.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Journal file format, torn tails, checksums, replay, and the preserved-interval bookkeeping."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os
import random
import struct

import pytest

from ansible_collections.replicator.vsphere.plugins.module_utils.store import journal as jmod
from ansible_collections.replicator.vsphere.plugins.module_utils.datapath.endpoint import FileEndpoint
from ansible_collections.replicator.vsphere.plugins.module_utils.datapath.intervals import IntervalSet
from ansible_collections.replicator.vsphere.plugins.module_utils.store.journal import (
    FILE_HEADER_SIZE, FLAG_ZERO, FLAG_ZSTD, RECORD_HEADER_SIZE, JournalError, JournalReader, JournalWriter, replay,
)


class FileTarget(FileEndpoint):
    """A writable FileEndpoint on a new (sparse) file of `size` bytes, plus a whole-image read for comparisons."""

    def __init__(self, path, size=None):
        if size is not None:
            with open(path, 'wb') as f:
                f.truncate(size)
        FileEndpoint.__init__(self, path, writable=True)

    def read_all(self):
        return os.pread(self.fd, self.size, 0)


class HoleTarget(FileTarget):
    """Reports every range below `hole_end` as known-zero (like NBD block status on a sparse export)."""

    hole_end = 0

    def preadinto(self, offset, buf):
        if offset < self.hole_end:
            raise AssertionError('a known-zero range must not be read')
        FileTarget.preadinto(self, offset, buf)

    def extents(self, offset, length):
        if offset < self.hole_end:
            n = min(length, self.hole_end - offset)
            yield offset, n, True
            offset, length = offset + n, length - n
        if length:
            yield offset, length, False


@pytest.fixture
def target(tmp_path):
    t = FileTarget(str(tmp_path / 'disk.img'), 3 * 1024 * 1024 + 7 * 512)
    rnd = random.Random(5)
    os.pwrite(t.fd, bytes(rnd.getrandbits(8) for dummy in range(4096)) * 256, 0)   # 1 MiB compressible data
    os.pwrite(t.fd, os.urandom(512 * 1024), 2 * 1024 * 1024)                        # incompressible
    yield t
    t.close()


def records(path, strict=True):
    return [(r.offset, r.length, r.flags, r.payload) for r in JournalReader(path, strict=strict)]


# ---- IntervalSet -------------------------------------------------------------------------------------------------

def test_intervals_merge_and_missing():
    s = IntervalSet()
    s.add(10, 20)
    s.add(30, 40)
    assert list(s) == [(10, 20), (30, 40)]
    assert s.missing(0, 50) == [(0, 10), (20, 30), (40, 50)]
    assert s.missing(12, 18) == []
    assert s.missing(15, 35) == [(20, 30)]
    s.add(20, 30)                       # touching on both sides: one interval
    assert list(s) == [(10, 40)]
    s.add(5, 12)
    s.add(39, 45)
    assert list(s) == [(5, 45)] and s.total == 40
    s.add(100, 100)                     # empty: ignored
    assert len(s) == 1
    assert s.covers(5, 45) and not s.covers(4, 6)
    with pytest.raises(ValueError):
        s.add(5, 4)


def test_intervals_against_bitmap():
    rnd = random.Random(11)
    for dummy in range(50):
        s = IntervalSet()
        bitmap = [False] * 300
        for dummy2 in range(rnd.randint(1, 15)):
            a = rnd.randrange(300)
            b = rnd.randint(a, min(300, a + 40))
            s.add(a, b)
            for i in range(a, b):
                bitmap[i] = True
        a = rnd.randrange(300)
        b = rnd.randint(a, 300)
        expect = [i for i in range(a, b) if not bitmap[i]]
        got = [i for lo, hi in s.missing(a, b) for i in range(lo, hi)]
        assert got == expect
        assert s.total == sum(bitmap)
        assert all(e < s2 for (dummy3, e), (s2, dummy4) in zip(list(s), list(s)[1:]))   # disjoint, not touching


# ---- format round trip ---------------------------------------------------------------------------------------------

def test_round_trip_and_replay(tmp_path, target):
    before = target.read_all()
    path = str(tmp_path / 'j.rvj')
    w = JournalWriter.create(path, target, chunk=256 * 1024)
    # compressible data, an all-zero range, incompressible data, and the short last 512-byte sector
    assert w.preserve_many([(0, 300 * 1024), (1536 * 1024, 4096), (2 * 1024 * 1024, 64 * 1024)]) == 300 * 1024 + 4096 + 65536
    assert w.preserve(target.size - 512, 512) == 512
    assert w.preserve(100, 1000) == 0                       # already preserved: nothing new
    assert w.preserve(290 * 1024, 20 * 1024) == 10 * 1024   # only the part after 300 KiB is new
    w.seal()
    recs = records(path)
    assert [(o, n) for o, n, dummy, dummy2 in recs] == [
        (0, 256 * 1024), (256 * 1024, 44 * 1024), (1536 * 1024, 4096), (2 * 1024 * 1024, 65536),
        (target.size - 512, 512), (300 * 1024, 10 * 1024)]
    flags = [f for dummy, dummy2, f, dummy3 in recs]
    assert flags[2] == FLAG_ZERO and recs[2][3] is None
    if jmod.HAS_ZSTD:
        assert flags[0] == FLAG_ZSTD
        assert flags[3] == 0        # random data does not compress: stored raw
    for off, n, dummy, payload in recs:
        if payload is not None:
            assert payload == before[off:off + n]
    # overwrite everything journaled, then replay brings the old bytes back
    for off, n, dummy, dummy2 in recs:
        target.pwrite(off, b'\xa5' * n)
    reader = replay(path, target)
    assert reader.records == 6 and reader.sealed
    assert target.read_all() == before
    assert os.path.getsize(path) < 300 * 1024 + 4096 + 65536   # compression and zero records pay off


def test_known_zero_extents_are_not_read(tmp_path):
    t = HoleTarget(str(tmp_path / 'd.img'), 1024 * 1024)
    t.hole_end = 512 * 1024
    os.pwrite(t.fd, b'x' * 1000, 600 * 1024)
    path = str(tmp_path / 'j.rvj')
    w = JournalWriter.create(path, t, chunk=128 * 1024)
    w.preserve(0, t.size)
    w.seal()
    recs = records(path)
    assert [f & FLAG_ZERO for dummy, dummy2, f, dummy3 in recs[:4]] == [FLAG_ZERO] * 4
    assert sum(n for dummy, n, dummy2, dummy3 in recs) == t.size
    t.close()


# ---- torn tails and corruption -----------------------------------------------------------------------------------

def _journal_with(tmp_path, target, n):
    path = str(tmp_path / 'j.rvj')
    w = JournalWriter.create(path, target, chunk=64 * 1024)
    for i in range(n):
        w.preserve(i * 100 * 1024, 64 * 1024)
    w.close()
    return path


@pytest.mark.parametrize('cut', [1, 7, RECORD_HEADER_SIZE - 1, RECORD_HEADER_SIZE + 3])
def test_torn_tail_is_ignored(tmp_path, target, cut):
    path = _journal_with(tmp_path, target, 3)
    last_start = _record_starts(path)[-1]
    with open(path, 'r+b') as f:
        f.truncate(last_start + cut)
    r = JournalReader(path, strict=False)
    got = [(x.offset, x.length) for x in r]
    assert got == [(0, 65536), (102400, 65536)]
    assert r.end == last_start and r.ignored_bytes == cut and not r.sealed
    with pytest.raises(JournalError, match='incomplete'):
        list(JournalReader(path, strict=True))


def _record_starts(path):
    starts = []
    with open(path, 'rb') as f:
        pos = FILE_HEADER_SIZE
        data = f.read()
    while pos < len(data):
        starts.append(pos)
        stored = struct.unpack('<I', data[pos + 20:pos + 24])[0]
        pos += RECORD_HEADER_SIZE + stored
    return starts


def test_checksum_mismatch_detected(tmp_path, target):
    path = _journal_with(tmp_path, target, 3)
    starts = _record_starts(path)
    with open(path, 'r+b') as f:
        f.seek(starts[1] + RECORD_HEADER_SIZE + 5)       # one payload byte of the middle record
        b = f.read(1)
        f.seek(-1, 1)
        f.write(bytes([b[0] ^ 1]))
    with pytest.raises(JournalError, match='checksum mismatch'):
        list(JournalReader(path, strict=True))
    r = JournalReader(path, strict=False)
    assert len(list(r)) == 1 and 'checksum' in r.problem


def test_header_field_corruption_detected(tmp_path, target):
    path = _journal_with(tmp_path, target, 2)
    starts = _record_starts(path)
    with open(path, 'r+b') as f:
        f.seek(starts[0] + 8)                             # the offset field of the first record
        f.write(struct.pack('<Q', 4096))
    with pytest.raises(JournalError, match='checksum'):
        list(JournalReader(path, strict=True))


def test_sealed_journal_required_in_strict_mode(tmp_path, target):
    path = _journal_with(tmp_path, target, 1)
    with pytest.raises(JournalError, match='not sealed'):
        list(JournalReader(path, strict=True))
    assert len(list(JournalReader(path, strict=False))) == 1


def test_open_append_truncates_torn_tail_and_keeps_bookkeeping(tmp_path, target):
    path = _journal_with(tmp_path, target, 2)
    with open(path, 'ab') as f:
        f.write(b'RJR1 garbage of a torn record')
    w = JournalWriter.open_append(path, target, chunk=64 * 1024)
    assert list(w.preserved) == [(0, 65536), (102400, 167936)]
    assert w.preserve(0, 200 * 1024) == 200 * 1024 - 2 * 65536
    w.seal()
    r = JournalReader(path, strict=True)
    assert sum(x.length for x in r) == 200 * 1024 and r.sealed
    with pytest.raises(JournalError, match='sealed'):
        JournalWriter.open_append(path, target)


def test_bad_file_header(tmp_path, target):
    path = str(tmp_path / 'j.rvj')
    with open(path, 'wb') as f:
        f.write(b'NOTAJOURNAL' + bytes(40))
    with pytest.raises(JournalError, match='file header'):
        list(JournalReader(path, strict=True))
    assert list(JournalReader(path, strict=False)) == []
    w = JournalWriter.open_append(path, target)           # nothing valid: starts a new journal
    w.preserve(0, 512)
    w.seal()
    assert len(list(JournalReader(path))) == 1


def test_crc32_fallback_reads_back(tmp_path, target, monkeypatch):
    monkeypatch.setattr(jmod, 'HAS_XXHASH', False)
    path = str(tmp_path / 'j.rvj')
    w = JournalWriter.create(path, target, compress=False)
    assert w.algo == jmod.CHECKSUM_CRC32
    w.preserve(4096, 8192)
    w.seal()
    recs = records(path)
    assert recs[0][:2] == (4096, 8192) and recs[0][3] == target.read_all()[4096:12288]
