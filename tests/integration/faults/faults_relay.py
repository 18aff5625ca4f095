# -*- coding: utf-8 -*-
# Copyright: (c) 2026, replicator.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A TCP relay in front of one lab site: 127.0.0.1:LISTEN -> 127.0.0.1:UPSTREAM (TLS passes through untouched).

usage: faults_relay.py LISTEN_PORT UPSTREAM_PORT MAX_SECONDS

The fault tests point the modules at the relay and SIGKILL it to take the vSphere endpoint away mid-cycle: every
connection is cut and new ones are refused, as when vCenter or hostd dies. Starting it again on the same port
brings the endpoint back with its inventory intact (labd keeps its inventory in memory only, so killing labd
itself would lose the replicas; a vCenter keeps it in its database). It exits by itself after MAX_SECONDS.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import selectors
import socket
import sys
import time


def main():
    listen, upstream, limit = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(('127.0.0.1', listen))
    server.listen(64)
    server.setblocking(False)
    sel = selectors.DefaultSelector()
    sel.register(server, selectors.EVENT_READ, None)
    sys.stdout.write('ready\n')
    sys.stdout.flush()
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        for key, _mask in sel.select(timeout=0.5):
            if key.data is None:
                client, _addr = server.accept()
                try:
                    remote = socket.create_connection(('127.0.0.1', upstream), timeout=10)
                except OSError:
                    client.close()
                    continue
                for s in (client, remote):
                    # no Nagle: a TLS record held back waits for the peer's delayed ACK (40 ms per round trip)
                    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    s.setblocking(False)
                sel.register(client, selectors.EVENT_READ, remote)
                sel.register(remote, selectors.EVENT_READ, client)
                continue
            src, dst = key.fileobj, key.data
            try:
                data = src.recv(262144)
            except OSError:
                data = b''
            if data:
                try:
                    dst.setblocking(True)
                    dst.sendall(data)
                    dst.setblocking(False)
                    continue
                except OSError:
                    pass
            for s in (src, dst):
                try:
                    sel.unregister(s)
                except (KeyError, ValueError):
                    pass
                s.close()
    return 0


if __name__ == '__main__':
    sys.exit(main())
