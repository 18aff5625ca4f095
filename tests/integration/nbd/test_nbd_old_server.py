# -*- coding: utf-8 -*-
# Copyright: (c) 2026, replicator.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Paths no packaged server takes: a server without NBD_OPT_GO (NBD_OPT_EXPORT_NAME fallback) and a server that
ends a structured read before sending all the bytes (short read). A small scripted peer on a unix socket plays
the server."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os
import socket
import struct
import tempfile
import threading

import pytest

from ansible_collections.replicator.vsphere.plugins.module_utils.datapath import nbd_protocol as p
from ansible_collections.replicator.vsphere.plugins.module_utils.datapath.endpoint import EndpointError
from ansible_collections.replicator.vsphere.plugins.module_utils.datapath.nbd_client import NbdEndpoint

SIZE = 1 << 20


def _pattern(offset, length):
    return bytes((i * 7 + 3) & 0xff for i in range(offset, offset + length))


def _recv(conn, n):
    buf = b''
    while len(buf) < n:
        got = conn.recv(n - len(buf))
        if not got:
            raise EOFError
        buf += got
    return buf


def _opt_reply(conn, option, reply_type, data=b''):
    conn.sendall(struct.pack('>QIII', p.REPLY_MAGIC_OPT, option, reply_type, len(data)) + data)


def _serve(conn, structured_short):
    conn.sendall(struct.pack('>QQH', p.NBDMAGIC, p.IHAVEOPT, p.FLAG_FIXED_NEWSTYLE))  # no NO_ZEROES
    _recv(conn, 4)
    structured = False
    while True:
        _magic, option, length = struct.unpack('>QII', _recv(conn, 16))
        data = _recv(conn, length)
        if option == p.OPT_EXPORT_NAME:
            if data != b'old':
                return
            conn.sendall(struct.pack('>QH', SIZE, p.TFLAG_HAS_FLAGS | p.TFLAG_SEND_FLUSH) + bytes(124))
            break
        if option == p.OPT_STRUCTURED_REPLY and structured_short:
            structured = True
            _opt_reply(conn, option, p.REP_ACK)
        elif option == p.OPT_GO and structured_short:
            _opt_reply(conn, option, p.REP_INFO, struct.pack('>HQH', p.INFO_EXPORT, SIZE, p.TFLAG_HAS_FLAGS))
            _opt_reply(conn, option, p.REP_ACK)
            break
        else:
            _opt_reply(conn, option, p.REP_ERR_UNSUP)
    while True:
        _magic, _flags, cmd, handle, offset, length = struct.unpack('>IHHQQI', _recv(conn, 28))
        if cmd == p.CMD_DISC:
            return
        if cmd == p.CMD_READ and structured:
            half = length // 2   # only half of the data, then DONE
            conn.sendall(struct.pack('>IHHQIQ', p.STRUCTURED_REPLY_MAGIC, p.REPLY_FLAG_DONE,
                                     p.REPLY_TYPE_OFFSET_DATA, handle, 8 + half, offset) + _pattern(offset, half))
        elif cmd == p.CMD_READ:
            conn.sendall(struct.pack('>IIQ', p.SIMPLE_REPLY_MAGIC, 0, handle) + _pattern(offset, length))
        else:
            conn.sendall(struct.pack('>IIQ', p.SIMPLE_REPLY_MAGIC, 0 if cmd == p.CMD_FLUSH else 22, handle))


@pytest.fixture
def scripted_server(request):
    structured_short, connections = request.param
    tmp = tempfile.mkdtemp(prefix='nbdo', dir='/tmp')
    path = os.path.join(tmp, 'sock')
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(4)
    listener.settimeout(20)

    def loop():
        for _i in range(connections):
            try:
                conn, _addr = listener.accept()
            except OSError:
                return
            conn.settimeout(20)
            try:
                _serve(conn, structured_short)
            except (EOFError, OSError):
                pass
            finally:
                conn.close()

    t = threading.Thread(target=loop)
    t.daemon = True
    t.start()
    yield path
    listener.close()
    t.join(25)
    os.unlink(path)
    os.rmdir(tmp)


@pytest.mark.parametrize('scripted_server', [(False, 2)], indirect=True)
def test_export_name_fallback_without_go(scripted_server):
    with NbdEndpoint('nbd+unix:///old?socket=%s' % scripted_server) as ep:
        info = ep.describe()
        assert ep.size == SIZE and 'simple' in info['protocol'] and not info['block_status']
        assert ep.writable is True   # no READ_ONLY flag
        buf = bytearray(70000)
        ep.preadinto(12345, buf)
        assert buf == _pattern(12345, 70000)
        assert list(ep.extents(0, SIZE)) == [(0, SIZE, False)]
        ep.flush()
        with pytest.raises(EndpointError, match='invalid argument'):
            ep.pwrite(0, b'x')   # the scripted server answers EINVAL to writes
    with pytest.raises(EndpointError, match='closed the connection during the handshake'):
        NbdEndpoint('nbd+unix:///other?socket=%s' % scripted_server)


@pytest.mark.parametrize('scripted_server', [(True, 1)], indirect=True)
def test_short_structured_read_is_an_error(scripted_server):
    uri = 'nbd+unix:///x?socket=%s' % scripted_server
    with NbdEndpoint(uri) as ep:
        assert 'structured' in ep.describe()['protocol']
        with pytest.raises(EndpointError) as e:
            ep.preadinto(0, bytearray(8192))
        assert 'short read' in str(e.value) and uri in str(e.value)
