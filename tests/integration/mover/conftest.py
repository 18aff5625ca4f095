# -*- coding: utf-8 -*-
# Copyright: (c) 2026, replicator.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Fixtures for the data mover tests; every server started here is stopped by PID at teardown."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os
import shutil
import tempfile

import pytest

from mover_helpers import Nbd, Sshd, stop_pid


@pytest.fixture(scope='session')
def sshd():
    if not os.path.exists('/usr/sbin/sshd') or shutil.which('ssh') is None:
        pytest.skip('openssh-server / openssh-client not installed')
    tmp = tempfile.mkdtemp(prefix='rvssh', dir='/tmp')
    server = Sshd(tmp)
    yield server
    stop_pid(server.proc)
    shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture
def nbd():
    tmp = tempfile.mkdtemp(prefix='rvnbd', dir='/tmp')
    servers = Nbd(tmp)
    yield servers
    servers.stop()
    shutil.rmtree(tmp, ignore_errors=True)
