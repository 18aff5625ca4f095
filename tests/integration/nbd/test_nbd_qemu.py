# -*- coding: utf-8 -*-
# Copyright: (c) 2026, replicator.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""NbdEndpoint against qemu-nbd serving raw and sparse qcow2 images."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os
import random

import pytest

from ansible_collections.replicator.vsphere.plugins.module_utils.datapath.endpoint import EndpointError, open_endpoint
from ansible_collections.replicator.vsphere.plugins.module_utils.datapath.nbd_client import NbdEndpoint

MiB = 1024 * 1024


def _qcow2(run_tool, path, size, writes=()):
    """A sparse qcow2 image; writes: qemu-io commands run before serving."""
    run_tool(['qemu-img', 'create', '-q', '-f', 'qcow2', str(path), str(size)])
    if writes:
        args = ['qemu-io', '-f', 'qcow2']
        for w in writes:
            args.extend(['-c', w])
        run_tool(args + [str(path)])
    return path


def test_raw_image_roundtrip_matches_file_and_nbdcopy(nbd_servers, run_tool, tmp_path):
    size = 80 * MiB
    image = tmp_path / 'disk.raw'
    rng = random.Random(11)
    model = bytearray(size)
    model[:4 * MiB] = rng.randbytes(4 * MiB)
    image.write_bytes(model)
    server = nbd_servers.qemu_nbd(str(image), fmt='raw')
    with NbdEndpoint(server.uri) as ep:
        assert ep.size == size and ep.writable
        assert ep.describe()['max_payload'] == 32 * MiB
        # a request far above the server's 32 MiB maximum is split
        big = rng.randbytes(40 * MiB + 512)
        ep.pwrite(MiB + 512, big)
        model[MiB + 512:MiB + 512 + len(big)] = big
        for _i in range(40):
            length = rng.randint(1, 700 * 1024)
            offset = rng.randint(0, size - length)
            data = rng.randbytes(length)
            ep.pwrite(offset, data)
            model[offset:offset + length] = data
        ep.flush()
        buf = bytearray(size)
        ep.preadinto(0, buf)   # one 80 MiB call -> three pipelined requests
        assert buf == model
    assert image.read_bytes() == model
    out = tmp_path / 'copy.raw'
    run_tool(['nbdcopy', server.uri, str(out)])
    assert out.read_bytes() == model


def test_sparse_qcow2_extents_match_nbdinfo_and_holes_read_zero(nbd_servers, run_tool, nbdinfo_map, zero_runs, tmp_path):
    size = 64 * MiB
    image = _qcow2(run_tool, tmp_path / 'disk.qcow2', size,
                   ['write -P 0xab 1M 3M', 'write -P 0xcd 20M 64k', 'write -z 30M 2M', 'write -P 0x11 63M 1M'])
    server = nbd_servers.qemu_nbd(str(image), fmt='qcow2')
    with NbdEndpoint(server.uri) as ep:
        assert ep.describe()['block_status']
        ours = list(ep.extents(0, ep.size))
        assert zero_runs(ours) == nbdinfo_map(server.uri)
        assert (MiB, 3 * MiB, False) in ours and ours[0] == (0, MiB, True)
        # a read spanning data and holes (qemu-nbd answers with OFFSET_DATA and OFFSET_HOLE chunks)
        buf = bytearray(b'\x55' * (22 * MiB))
        ep.preadinto(0, buf)
        expected = bytearray(22 * MiB)
        expected[MiB:4 * MiB] = b'\xab' * (3 * MiB)
        expected[20 * MiB:20 * MiB + 65536] = b'\xcd' * 65536
        assert buf == expected
        # sub-range extents are clamped to the range asked for
        part = list(ep.extents(2 * MiB + 100, 19 * MiB))
        assert part[0][0] == 2 * MiB + 100 and sum(e[1] for e in part) == 19 * MiB
        # zeroing data makes it read back as zeros and block status agrees with nbdinfo again
        ep.write_zeroes(MiB, 2 * MiB)
        ep.pwrite(40 * MiB, b'\x01' * 4096)
        ep.flush()
        got = bytearray(3 * MiB)
        ep.preadinto(MiB, got)
        assert got == bytes(2 * MiB) + b'\xab' * MiB
        assert zero_runs(list(ep.extents(0, ep.size))) == nbdinfo_map(server.uri)
    raw = tmp_path / 'copy.raw'
    run_tool(['nbdcopy', server.uri, str(raw)])
    with NbdEndpoint(server.uri) as ep:
        whole = bytearray(size)
        ep.preadinto(0, whole)
    assert raw.read_bytes() == whole


def test_concurrent_readers_qcow2(nbd_servers, run_tool, tmp_path):
    import threading  # pylint: disable=import-outside-toplevel
    image = _qcow2(run_tool, tmp_path / 'disk.qcow2', 32 * MiB,
                   ['write -P 0x%02x %dM 1M' % (i + 1, i) for i in range(0, 32, 2)])
    server = nbd_servers.qemu_nbd(str(image), fmt='qcow2')
    bad = []
    with NbdEndpoint(server.uri) as ep:
        def reader(seed):
            rng = random.Random(seed)
            for _i in range(30):
                block = rng.randrange(32)
                buf = bytearray(MiB)
                ep.preadinto(block * MiB, buf)
                want = bytes([block + 1]) * MiB if block % 2 == 0 else bytes(MiB)
                if buf != want:
                    bad.append(block)
        threads = [threading.Thread(target=reader, args=(s,)) for s in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
    assert bad == []


def test_read_only_qcow2_export(nbd_servers, run_tool, tmp_path):
    image = _qcow2(run_tool, tmp_path / 'disk.qcow2', 8 * MiB, ['write -P 0x42 0 1M'])
    server = nbd_servers.qemu_nbd(str(image), fmt='qcow2', readonly=True)
    with open_endpoint(server.uri) as ep:
        assert ep.writable is False
        buf = bytearray(MiB)
        ep.preadinto(0, buf)
        assert buf == b'\x42' * MiB
        with pytest.raises(EndpointError, match='read-only'):
            ep.pwrite(0, b'\0' * 512)
    with pytest.raises(EndpointError, match='read-only'):
        open_endpoint(server.uri, writable=True)


def test_missing_export(nbd_servers, tmp_path):
    image = tmp_path / 'disk.raw'
    image.write_bytes(bytes(MiB))
    server = nbd_servers.qemu_nbd(str(image), fmt='raw', export='disk0')
    with NbdEndpoint(server.uri) as ep:
        assert ep.size == MiB
    wrong = server.uri.replace('/disk0?', '/disk1?')
    with pytest.raises(EndpointError) as e:
        NbdEndpoint(wrong)
    assert 'export "disk1" not found' in str(e.value) and wrong in str(e.value)


def test_short_image_read_beyond_end_is_refused(nbd_servers, tmp_path):
    image = tmp_path / 'disk.raw'
    image.write_bytes(os.urandom(MiB))
    server = nbd_servers.qemu_nbd(str(image), fmt='raw')
    with NbdEndpoint(server.uri) as ep:
        with pytest.raises(EndpointError, match='outside the export'):
            ep.preadinto(MiB - 512, bytearray(1024))


def test_large_sparse_image_spans_several_requests(nbd_servers, run_tool, nbdinfo_map, zero_runs, tmp_path):
    image = _qcow2(run_tool, tmp_path / 'big.qcow2', 3 * 1024 * MiB, ['write -P 1 100M 1M', 'write -P 2 2100M 1M'])
    server = nbd_servers.qemu_nbd(str(image), fmt='qcow2')
    with NbdEndpoint(server.uri) as ep:
        ours = list(ep.extents(0, ep.size))   # more than one 1 GiB block status request
        assert ours == [(0, 100 * MiB, True), (100 * MiB, MiB, False), (101 * MiB, 1999 * MiB, True),
                        (2100 * MiB, MiB, False), (2101 * MiB, ep.size - 2101 * MiB, True)]
        assert zero_runs(ours) == nbdinfo_map(server.uri)
        ep.write_zeroes(0, 2200 * MiB)        # more than one 1 GiB write zeroes request
        assert list(ep.extents(0, ep.size)) == [(0, ep.size, True)]
        buf = bytearray(MiB)
        ep.preadinto(2100 * MiB, buf)
        assert buf == bytes(MiB)
