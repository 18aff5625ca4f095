# -*- coding: utf-8 -*-
# Copyright: (c) 2026, replicator.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os
import threading

import pytest

from ansible_collections.replicator.vsphere.plugins.module_utils.datapath.endpoint import EndpointError, FileEndpoint, open_endpoint

MIB = 1024 * 1024


def _sparse(path, size, data_at=()):
    with open(path, 'wb') as f:
        f.truncate(size)
        for off, data in data_at:
            f.seek(off)
            f.write(data)


def test_read_write_zero_extents(tmp_path):
    p = str(tmp_path / 'd.img')
    _sparse(p, 8 * MIB, [(3 * MIB, b'a' * 8192)])
    with open_endpoint(p, writable=True) as ep:
        assert ep.size == 8 * MIB
        ext = list(ep.extents(0, ep.size))
        assert sum(n for _o, n, _z in ext) == 8 * MIB
        assert any(not z and o <= 3 * MIB < o + n for o, n, z in ext)
        buf = bytearray(4096)
        ep.preadinto(3 * MIB, buf)
        assert buf == b'a' * 4096
        ep.pwrite(5 * MIB + 512, b'b' * 512)
        ep.write_zeroes(3 * MIB, 8192)
        ep.flush()
        ep.preadinto(3 * MIB, buf)
        assert buf == bytes(4096)
        with pytest.raises(EndpointError, match='outside'):
            ep.preadinto(8 * MIB - 10, bytearray(20))
    with open(p, 'rb') as f:
        f.seek(5 * MIB + 512)
        assert f.read(512) == b'b' * 512


def test_read_only_refuses_writes(tmp_path):
    p = str(tmp_path / 'd.img')
    _sparse(p, MIB)
    with open_endpoint('file://' + p) as ep:
        with pytest.raises(EndpointError, match='read-only'):
            ep.pwrite(0, b'x')


def test_descriptor_resolves_flat_extent(tmp_path):
    _sparse(str(tmp_path / 'd-flat.vmdk'), 2 * MIB, [(MIB, b'z' * 512)])
    (tmp_path / 'd.vmdk').write_text('# Disk DescriptorFile\nversion=1\nCID=1\nparentCID=ffffffff\n'
                                     'createType="vmfs"\nRW 4096 VMFS "d-flat.vmdk"\n')
    with open_endpoint(str(tmp_path / 'd.vmdk')) as ep:
        assert ep.size == 2 * MIB and isinstance(ep, FileEndpoint)
        buf = bytearray(512)
        ep.preadinto(MIB, buf)
        assert buf == b'z' * 512


def test_delta_descriptor_and_sparse_are_refused(tmp_path):
    (tmp_path / 'd-000001.vmdk').write_text('# Disk DescriptorFile\nversion=1\nCID=2\nparentCID=1\n'
                                            'createType="vmfsSparse"\nparentFileNameHint="d.vmdk"\n'
                                            'RW 4096 VMFSSPARSE "d-000001-delta.vmdk"\n')
    with pytest.raises(EndpointError, match='nbd transport'):
        open_endpoint(str(tmp_path / 'd-000001.vmdk'))
    (tmp_path / 's.vmdk').write_bytes(b'KDMV' + bytes(1020))
    with pytest.raises(EndpointError, match='nbd transport'):
        open_endpoint(str(tmp_path / 's.vmdk'))


def test_allowed_roots(tmp_path):
    root = tmp_path / 'root'
    root.mkdir()
    outside = str(tmp_path / 'x.img')
    _sparse(outside, MIB)
    os.symlink(outside, str(root / 'link.img'))
    with pytest.raises(EndpointError, match='outside the allowed'):
        open_endpoint(str(root / '..' / 'x.img'), writable=True, allowed_roots=[str(root)])
    with pytest.raises(EndpointError, match='outside the allowed'):
        open_endpoint(str(root / 'link.img'), writable=True, allowed_roots=[str(root)])
    _sparse(str(root / 'ok.img'), MIB)
    open_endpoint(str(root / 'ok.img'), writable=True, allowed_roots=[str(root)]).close()


def test_bad_specs(tmp_path):
    with pytest.raises(EndpointError, match='scheme'):
        open_endpoint('http://x/y')
    with pytest.raises(EndpointError):
        open_endpoint(str(tmp_path / 'missing.img'))


def test_write_behind_kicks_and_data_intact(tmp_path):
    path = str(tmp_path / 'wb.img')
    with open(path, 'wb') as f:
        f.truncate(1024 * 1024)
    blocks = [os.urandom(65536) for _i in range(16)]
    ep = FileEndpoint(path, writable=True, writeback_bytes=128 * 1024)
    for i, data in enumerate(blocks):
        ep.pwrite(i * 65536, data)
    assert ep.writeback_kicks == 8      # the writer itself starts write-out of every 128 KiB written
    ep.flush()
    ep.close()
    with open(path, 'rb') as f:
        assert f.read() == b''.join(blocks)
    off = FileEndpoint(path, writable=True, writeback_bytes=0)
    off.pwrite(0, b'x' * 4096)
    off.close()
    assert off.writeback_kicks == 0


def test_concurrent_writers_take_turns_and_keep_the_window(tmp_path):
    """Several threads writing distinct blocks at once (the mover's workers in unjournaled cycles): every byte lands,
    every block is kicked, and no more than the window of started write-out is ever left in flight."""
    path = str(tmp_path / 'mt.img')
    with open(path, 'wb') as f:
        f.truncate(32 * MIB)
    blocks = [os.urandom(MIB) for _i in range(32)]
    ep = FileEndpoint(path, writable=True, writeback_bytes=MIB, writeback_window=4 * MIB)
    seen = []
    account = ep._written

    def spy(start, n):
        landed = account(start, n)
        seen.append(ep._inflight_bytes)
        return landed
    ep._written = spy

    def write(indexes):
        for i in indexes:
            ep.pwrite(i * MIB, blocks[i])
    threads = [threading.Thread(target=write, args=(range(k, 32, 4),)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    ep.flush()
    ep.close()
    assert ep.writeback_kicks == 32
    assert len(seen) == 32 and max(seen) <= 4 * MIB
    assert ep.bytes_dropped == 28 * MIB     # all but the last window, once each range was on the disk
    with open(path, 'rb') as f:
        assert f.read() == b''.join(blocks)


def _resident_pages(path):
    """Pages of the file in the page cache (mincore over a shared mapping: mapping faults nothing in)."""
    import ctypes
    import mmap
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p]
    with open(path, 'r+b') as f:
        size = os.fstat(f.fileno()).st_size
        mm = mmap.mmap(f.fileno(), size)
        try:
            pages = (size + mmap.PAGESIZE - 1) // mmap.PAGESIZE
            vec = ctypes.create_string_buffer(pages)
            anchor = ctypes.c_char.from_buffer(mm)
            try:
                assert libc.mincore(ctypes.addressof(anchor), size, vec) == 0, os.strerror(ctypes.get_errno())
            finally:
                del anchor
            return sum(1 for b in vec.raw if b & 1)
        finally:
            mm.close()


@pytest.mark.parametrize('drop', [True, False])
def test_drop_behind_leaves_the_cache_and_keeps_the_data(tmp_path, drop):
    """With drop-behind, ranges beyond the write-behind window leave the page cache once their write-out finished
    (the replica does not fill the proxy's memory); without it they stay. The data reads back intact either way
    (checked after the residency count)."""
    path = str(tmp_path / 'drop.img')
    with open(path, 'wb') as f:
        f.truncate(8 * MIB)
    blocks = [os.urandom(MIB) for _i in range(8)]
    ep = FileEndpoint(path, writable=True, writeback_bytes=256 * 1024, writeback_window=MIB, drop_behind=drop)
    for i, data in enumerate(blocks):
        for q in range(0, MIB, 256 * 1024):     # a kick per 256 KiB write; the window keeps the last 1 MiB in flight
            ep.pwrite(i * MIB + q, data[q:q + 256 * 1024])
        assert ep.writeback_kicks == 4 * (i + 1)
        assert ep.bytes_dropped == (i * MIB if drop else 0)
    ep.flush()
    ep.close()
    resident = _resident_pages(path)
    if drop:
        assert ep.bytes_dropped == 7 * MIB
        assert resident <= MIB // 4096, 'dropped ranges are still in the page cache'
    else:
        assert ep.bytes_dropped == 0
        assert resident == 8 * MIB // 4096
    with open(path, 'rb') as f:
        assert f.read() == b''.join(blocks)


def test_preallocated_writes_keep_the_holes_and_the_size(tmp_path):
    """Whole-block writes allocate their own blocks first, and nothing else: the ranges never written stay holes
    (a replica of a thin disk stays thin), the file keeps its size, the data reads back."""
    path = str(tmp_path / 'thin.img')
    with open(path, 'wb') as f:
        f.truncate(16 * MIB)
    ep = FileEndpoint(path, writable=True)
    blocks = {2 * MIB: os.urandom(MIB), 9 * MIB: os.urandom(MIB), 10 * MIB: os.urandom(MIB)}
    for offset, data in blocks.items():
        ep.pwrite(offset, data)
    ep.flush()
    assert [(o, n) for o, n, z in ep.extents(0, 16 * MIB) if not z] == [(2 * MIB, MIB), (9 * MIB, 2 * MIB)]
    ep.close()
    st = os.stat(path)
    assert st.st_size == 16 * MIB
    assert st.st_blocks * 512 == 3 * MIB
    with open(path, 'rb') as f:
        for offset, data in blocks.items():
            f.seek(offset)
            assert f.read(MIB) == data


def test_preallocation_only_on_the_file_systems_it_pays_on(tmp_path, monkeypatch):
    """ext4 / XFS / tmpfs preallocate whole-block writes; any other file system (NFS: a round trip per block,
    btrfs: copy-on-write) writes plainly, with the same bytes on the disk."""
    from ansible_collections.replicator.vsphere.plugins.module_utils.datapath import endpoint
    path = str(tmp_path / 'fs.img')
    with open(path, 'wb') as f:
        f.truncate(2 * MIB)
    fd = os.open(path, os.O_RDONLY)
    try:
        kind = endpoint._fs_type(fd)
    finally:
        os.close(fd)
    assert kind is not None and kind > 0
    ep = FileEndpoint(path, writable=True)
    assert ep._prealloc == (kind in endpoint.PREALLOCATE_FS)
    ep.close()
    monkeypatch.setattr(endpoint, 'PREALLOCATE_FS', frozenset())
    ep = FileEndpoint(path, writable=True)
    assert not ep._prealloc
    data = os.urandom(MIB)
    ep.pwrite(MIB, data)
    ep.close()
    with open(path, 'rb') as f:
        assert f.read() == bytes(MIB) + data


def test_scattered_writes_are_kicked_and_dropped_piece_by_piece(tmp_path):
    """CBT pieces land all over the disk: each contiguous run is started and retired on its own, so what leaves
    the page cache is only what was written, never a span across the disk between two pieces."""
    path = str(tmp_path / 'scatter.img')
    with open(path, 'wb') as f:
        f.truncate(64 * MIB)
    piece = 64 * 1024
    offsets = [i * 3 * MIB + (i % 5) * 8192 for i in range(20)]
    ep = FileEndpoint(path, writable=True, writeback_bytes=4 * piece, writeback_window=4 * piece)
    datas = [os.urandom(piece) for _o in offsets]
    for offset, data in zip(offsets, datas):
        ep.pwrite(offset, data)
    ep.flush()
    assert ep.writeback_kicks == len(offsets) - 1          # the last piece is still an open run
    assert all(hi - lo == piece for lo, hi in ep._inflight)
    assert ep.bytes_dropped == (len(offsets) - 1 - 4) * piece
    ep.close()
    with open(path, 'rb') as f:
        for offset, data in zip(offsets, datas):
            f.seek(offset)
            assert f.read(piece) == data
