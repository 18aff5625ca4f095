# -*- coding: utf-8 -*-
# Copyright: (c) 2026, replicator.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Fixtures for the data mover tests (sshd comes from tests/integration/conftest.py); every server started here is
stopped by PID at teardown."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import shutil
import tempfile

import pytest

from mover_helpers import Nbd


@pytest.fixture
def nbd():
    tmp = tempfile.mkdtemp(prefix='rvnbd', dir='/tmp')
    servers = Nbd(tmp)
    yield servers
    servers.stop()
    shutil.rmtree(tmp, ignore_errors=True)
