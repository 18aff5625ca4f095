# -*- coding: utf-8 -*-
# Copyright: (c) 2026, replicator.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Fixtures of the fault tests: ``faults`` (faults_lab.FaultLab on the session lab), ``relays`` (a TCP relay in
front of each lab site, stopped by PID), ``reliability`` (one row per scenario; with FAULTS_REPORT=path the rows
are written there as JSON at the end of the session: docs/reliability.md is made from them)."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import getpass
import json
import os
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from faults_lab import FaultLab, Relay  # noqa: E402  pylint: disable=wrong-import-position


class Reliability(object):
    def __init__(self):
        self.rows = []

    def add(self, **row):
        self.rows.append(row)


_REPORT = Reliability()


@pytest.fixture(scope='session')
def reliability():
    yield _REPORT
    path = os.environ.get('FAULTS_REPORT')
    if path and _REPORT.rows:
        with open(path, 'w') as f:
            json.dump(_REPORT.rows, f, indent=1, sort_keys=True)


@pytest.fixture(scope='session')
def faults(lab, tmp_path_factory):
    made = FaultLab(lab, str(tmp_path_factory.mktemp('faults')))
    yield made
    made.server.stop()


@pytest.fixture
def relays(lab):
    made = dict((name, Relay(lab.state['sites'][name]['port'])) for name in ('source', 'target'))
    yield made
    for relay in made.values():
        relay.stop()


@pytest.fixture
def ssh_receiver(sshd, tmp_path):
    """The receiver option for the test sshd, with SSH connection sharing (ControlMaster, as Ansible's own SSH
    connection uses it): the master connection is stopped at teardown with `ssh -O exit`."""
    control = '/tmp/rvflt-%d-%%C' % os.getpid()
    options = ['StrictHostKeyChecking=no', 'UserKnownHostsFile=%s' % sshd.known_hosts, 'ControlMaster=auto',
               'ControlPath=%s' % control, 'ControlPersist=120']
    receiver = {'host': '127.0.0.1', 'user': getpass.getuser(), 'port': sshd.port, 'identity_file': sshd.user_key,
                'python': sys.executable, 'ssh_config': 'none', 'ssh_options': options}
    yield receiver
    argv = ['ssh', '-F', 'none', '-p', str(sshd.port), '-l', receiver['user']]
    for option in options:
        argv += ['-o', option]
    subprocess.run(argv + ['-O', 'exit', '127.0.0.1'], capture_output=True, timeout=30, check=False)
