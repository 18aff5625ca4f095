# -*- coding: utf-8 -*-
# Copyright: (c) 2026, replicator.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""NbdEndpoint against real nbdkit servers (memory, file; filters rate, delay, log, blocksize-policy, error)."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os
import random
import re
import signal
import socket
import threading

import pytest

from ansible_collections.replicator.vsphere.plugins.module_utils.datapath.endpoint import EndpointError
from ansible_collections.replicator.vsphere.plugins.module_utils.datapath.nbd_client import NbdEndpoint

MiB = 1024 * 1024


def _random_io(ep, model, rng, rounds, max_len, align=1):
    """Random writes and reads at odd (or aligned) offsets; model is the expected content."""
    size = len(model)
    for _i in range(rounds):
        length = rng.randint(1, max_len) // align * align or align
        offset = rng.randint(0, size - length) // align * align
        data = rng.randbytes(length)
        ep.pwrite(offset, data)
        model[offset:offset + length] = data
        length = rng.randint(1, max_len) // align * align or align
        offset = rng.randint(0, size - length) // align * align
        buf = bytearray(length)
        ep.preadinto(offset, buf)
        assert buf == model[offset:offset + length], 'mismatch reading %d bytes at %d' % (length, offset)


def _read_all(ep, chunk=4 * MiB):
    out = bytearray(ep.size)
    view = memoryview(out)
    for off in range(0, ep.size, chunk):
        ep.preadinto(off, view[off:off + chunk])
    return out


def _max_overlap(log_path, verb='Read'):
    """Largest number of requests the server had in flight at once, from nbdkit's log filter."""
    open_ids = set()
    best = 0
    start = re.compile(r'connection=(\d+) %s id=(\d+) ' % verb)
    end = re.compile(r'connection=(\d+) \.\.\.%s id=(\d+) ' % verb)
    with open(log_path) as f:
        for line in f:
            m = start.search(line)
            if m:
                open_ids.add(m.groups())
                best = max(best, len(open_ids))
                continue
            m = end.search(line)
            if m:
                open_ids.discard(m.groups())
    return best


def _request_counts(log_path, verb='Read'):
    pat = re.compile(r'connection=\d+ %s id=\d+ offset=0x([0-9a-f]+) count=0x([0-9a-f]+)' % verb)
    with open(log_path) as f:
        return [(int(m.group(1), 16), int(m.group(2), 16)) for m in (pat.search(line) for line in f) if m]


@pytest.mark.parametrize('tcp', [False, True], ids=['unix', 'tcp'])
def test_memory_random_roundtrip_matches_nbdcopy(nbd_servers, run_tool, tmp_path, tcp):
    size = 8 * MiB + 4096
    server = nbd_servers.nbdkit(['memory', str(size)], tcp=tcp)
    rng = random.Random(1234 + tcp)
    model = bytearray(size)
    with NbdEndpoint(server.uri) as ep:
        assert ep.size == size and ep.writable
        assert ep.name == server.uri
        _random_io(ep, model, rng, rounds=60, max_len=300 * 1024)
        # 512-aligned I/O too
        _random_io(ep, model, rng, rounds=20, max_len=2 * MiB, align=512)
        ep.flush()
        assert _read_all(ep) == model
    out = tmp_path / 'copy.raw'
    run_tool(['nbdcopy', server.uri, str(out)])
    assert out.read_bytes() == model


def test_file_plugin_concurrent_readers_and_writers(nbd_servers, tmp_path):
    size = 24 * MiB
    image = tmp_path / 'disk.raw'
    content = bytearray(random.Random(7).randbytes(size))
    image.write_bytes(content)
    server = nbd_servers.nbdkit(['file', str(image)])
    errors = []
    with NbdEndpoint(server.uri) as ep:
        def reader(seed):
            rng = random.Random(seed)
            try:
                for _i in range(40):
                    length = rng.randint(1, 1 * MiB)
                    offset = rng.randint(0, 12 * MiB - length)  # the first half is never written
                    buf = bytearray(length)
                    ep.preadinto(offset, buf)
                    if buf != content[offset:offset + length]:
                        errors.append('reader %d mismatch at %d+%d' % (seed, offset, length))
            except Exception as e:  # pylint: disable=broad-except
                errors.append(repr(e))

        def writer(seed):
            rng = random.Random(seed)
            base = 12 * MiB + (seed - 100) * 3 * MiB   # disjoint 3 MiB regions in the second half
            try:
                for _i in range(10):
                    length = rng.randint(1, MiB)
                    offset = base + rng.randint(0, 3 * MiB - length)
                    data = rng.randbytes(length)
                    ep.pwrite(offset, data)
                    content[offset:offset + length] = data
            except Exception as e:  # pylint: disable=broad-except
                errors.append(repr(e))

        threads = [threading.Thread(target=reader, args=(i,)) for i in range(4)]
        threads += [threading.Thread(target=writer, args=(100 + i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert not any(t.is_alive() for t in threads)
        assert errors == []
        ep.flush()
        assert _read_all(ep) == content
    assert image.read_bytes() == content


def test_requests_are_pipelined_over_one_connection(nbd_servers, tmp_path):
    """With a slow server (delay filter) several threads' reads are in flight at the same time on one connection."""
    log = tmp_path / 'nbdkit.log'
    image = tmp_path / 'disk.raw'
    content = random.Random(3).randbytes(8 * MiB)
    image.write_bytes(content)
    server = nbd_servers.nbdkit(['file', str(image), 'logfile=%s' % log, 'rdelay=300ms', 'rate=200M'],
                                filters=('log', 'delay', 'rate'))
    results = {}
    with NbdEndpoint(server.uri) as ep:
        def reader(i):
            buf = bytearray(MiB)
            ep.preadinto(i * MiB, buf)
            results[i] = bytes(buf)

        threads = [threading.Thread(target=reader, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        # one large read split into several requests is also sent pipelined
        big = bytearray(6 * MiB)
        ep.preadinto(MiB, big)
    assert big == content[MiB:7 * MiB]
    assert [results[i] == content[i * MiB:(i + 1) * MiB] for i in range(4)] == [True] * 4
    connects = [line for line in log.read_text().splitlines() if ' Connect ' in line]
    assert len(connects) == 1
    assert _max_overlap(log) >= 2


def test_write_zeroes_over_data(nbd_servers):
    server = nbd_servers.nbdkit(['memory', str(16 * MiB)])
    with NbdEndpoint(server.uri) as ep:
        assert ep.describe()['can_zero']
        data = os.urandom(8 * MiB)
        ep.pwrite(MiB, data)
        ep.write_zeroes(2 * MiB, 3 * MiB + 512)
        buf = bytearray(8 * MiB)
        ep.preadinto(MiB, buf)
        expected = bytearray(data)
        expected[MiB:4 * MiB + 512] = bytes(3 * MiB + 512)
        assert buf == expected
        ext = list(ep.extents(0, ep.size))
        # covers the whole export, contiguous, and the written data is never claimed to be zero
        assert ext[0][0] == 0 and sum(e[1] for e in ext) == ep.size
        assert all(a[0] + a[1] == b[0] for a, b in zip(ext, ext[1:]))
        for off, length, zero in ext:
            if zero:
                assert not any(buf[max(off, MiB) - MiB:min(off + length, 9 * MiB) - MiB])


def test_write_zeroes_without_server_support_writes_zeros(nbd_servers):
    server = nbd_servers.nbdkit(['memory', str(8 * MiB)], filters=('nozero',))
    with NbdEndpoint(server.uri) as ep:
        assert not ep.describe()['can_zero']
        ep.pwrite(0, b'\xff' * (4 * MiB))
        ep.write_zeroes(4096, 3 * MiB)
        buf = bytearray(4 * MiB)
        ep.preadinto(0, buf)
        assert buf == b'\xff' * 4096 + bytes(3 * MiB) + b'\xff' * (MiB - 4096)


def test_block_size_limits_split_and_align(nbd_servers, tmp_path):
    log = tmp_path / 'nbdkit.log'
    server = nbd_servers.nbdkit(['memory', str(16 * MiB), 'logfile=%s' % log, 'blocksize-minimum=512',
                                 'blocksize-maximum=1M', 'blocksize-error-policy=error'],
                                filters=('log', 'blocksize-policy'))
    data = os.urandom(5 * MiB + 512)
    with NbdEndpoint(server.uri) as ep:
        info = ep.describe()
        assert info['block_size']['minimum'] == 512 and info['max_payload'] == MiB
        ep.pwrite(512, data)
        buf = bytearray(len(data))
        ep.preadinto(512, buf)
        assert buf == data
        # unaligned reads are served through an aligned bounce buffer
        odd = bytearray(1001)
        ep.preadinto(512 + 77, odd)
        assert odd == data[77:77 + 1001]
        with pytest.raises(EndpointError, match='not aligned to the 512-byte minimum'):
            ep.pwrite(3, b'abc')
    reads = _request_counts(log, 'Read')
    writes = _request_counts(log, 'Write')
    assert reads and writes
    assert max(c for _o, c in reads + writes) == MiB
    assert all(o % 512 == 0 and c % 512 == 0 for o, c in reads + writes)
    assert sum(c for _o, c in writes) == len(data)


def test_simple_replies_without_structured(nbd_servers):
    server = nbd_servers.nbdkit(['memory', str(4 * MiB)], extra=('--no-sr',))
    with NbdEndpoint(server.uri) as ep:
        info = ep.describe()
        assert 'simple' in info['protocol'] and not info['block_status']
        model = bytearray(ep.size)
        _random_io(ep, model, random.Random(5), rounds=20, max_len=MiB)
        assert list(ep.extents(100, 5000)) == [(100, 5000, False)]


def test_server_error_is_reported_and_connection_survives(nbd_servers):
    server = nbd_servers.nbdkit(['memory', str(4 * MiB), 'error-pread=EIO', 'error-pread-rate=1'],
                                filters=('error',))
    with NbdEndpoint(server.uri) as ep:
        with pytest.raises(EndpointError) as e:
            ep.preadinto(0, bytearray(4096))
        assert 'input/output error' in str(e.value) and server.uri in str(e.value)
        ep.pwrite(0, b'still works')
        ep.flush()


def test_read_only_export(nbd_servers):
    server = nbd_servers.nbdkit(['memory', str(MiB)], readonly=True)
    with NbdEndpoint(server.uri) as ep:
        assert ep.writable is False
        buf = bytearray(4096)
        ep.preadinto(0, buf)
        assert buf == bytes(4096)
        with pytest.raises(EndpointError, match='read-only'):
            ep.pwrite(0, b'x')
        with pytest.raises(EndpointError, match='read-only'):
            ep.write_zeroes(0, 512)
    with pytest.raises(EndpointError, match='read-only'):
        NbdEndpoint(server.uri, writable=True)


def test_unreachable_servers_and_bad_uris(tmp_path):
    probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    probe.bind(('127.0.0.1', 0))
    port = probe.getsockname()[1]
    probe.close()
    uri = 'nbd://127.0.0.1:%d/disk' % port
    with pytest.raises(EndpointError) as e:
        NbdEndpoint(uri, connect_timeout=5)
    assert uri in str(e.value) and 'cannot connect' in str(e.value)
    missing = 'nbd+unix:///disk?socket=%s' % (tmp_path / 'nope.sock')
    with pytest.raises(EndpointError, match='cannot connect'):
        NbdEndpoint(missing)
    with pytest.raises(EndpointError, match='not an NBD URI'):
        NbdEndpoint('http://127.0.0.1/disk')
    with pytest.raises(EndpointError, match='TLS'):
        NbdEndpoint('nbds://127.0.0.1/disk')


def test_not_an_nbd_server():
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(('127.0.0.1', 0))
    listener.listen(1)
    port = listener.getsockname()[1]

    def serve():
        conn, _addr = listener.accept()
        conn.sendall(b'SSH-2.0-OpenSSH_9.2 not nbd\r\n')
        conn.close()

    t = threading.Thread(target=serve)
    t.start()
    try:
        with pytest.raises(EndpointError, match='handshake'):
            NbdEndpoint('nbd://127.0.0.1:%d/' % port, connect_timeout=5)
    finally:
        t.join(10)
        listener.close()


def test_close_releases_socket_and_thread(nbd_servers):
    server = nbd_servers.nbdkit(['memory', str(MiB)])
    ep = NbdEndpoint(server.uri)
    thread = ep.conn._thread
    sock = ep.conn._sock
    assert thread.is_alive()
    ep.close()
    assert not thread.is_alive()
    assert sock.fileno() == -1
    ep.close()  # idempotent
    with pytest.raises(EndpointError):
        ep.preadinto(0, bytearray(512))


def test_server_going_away_fails_pending_and_new_requests(nbd_servers):
    server = nbd_servers.nbdkit(['memory', str(MiB)])
    with NbdEndpoint(server.uri, io_timeout=10) as ep:
        ep.preadinto(0, bytearray(512))
        os.kill(server.pid, signal.SIGKILL)  # a crash: the connection drops without a goodbye
        server.proc.wait(10)
        with pytest.raises(EndpointError):
            for _i in range(3):
                ep.preadinto(0, bytearray(512))
