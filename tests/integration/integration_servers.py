# -*- coding: utf-8 -*-
# Copyright: (c) 2026, replicator.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Real servers shared by the integration tests: free loopback ports, a throwaway sshd on 127.0.0.1 (its own host
and user keys, config and known_hosts in a temporary directory), and stopping what a test started by its PID; and
what every playbook test runs ansible-playbook with (its environment, the local host of the inventory)."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import getpass
import os
import shutil
import socket
import subprocess
import sys
import time

START_TIMEOUT = 15.0
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# the directory above ansible_collections/replicator/vsphere: the checkout itself, or the symlinked root beside it
COLLECTIONS_PATH = os.path.dirname(os.path.dirname(os.path.dirname(REPO))) \
    if REPO.endswith(os.path.join('ansible_collections', 'replicator', 'vsphere')) else os.path.join(REPO, '.build', 'acroot')
LOCAL_HOST = {'ansible_connection': 'local', 'ansible_python_interpreter': sys.executable}


def ansible_settings(base):
    """What a test runs Ansible with: its home and temp under `base`, the collection from this checkout (wherever
    it sits), this venv's commands first on PATH, no colours (ansible-runner's envvars take exactly these)."""
    return {'ANSIBLE_NOCOLOR': '1', 'ANSIBLE_HOME': os.path.join(str(base), 'home'),
            'ANSIBLE_LOCAL_TEMP': os.path.join(str(base), 'tmp'), 'ANSIBLE_COLLECTIONS_PATH': COLLECTIONS_PATH,
            'PATH': os.pathsep.join([os.path.dirname(sys.executable), os.environ.get('PATH', '')])}


def playbook_env(base, **extra):
    """ansible-playbook's whole environment for a test: this one's, with ansible_settings(base) and `extra`."""
    env = dict(os.environ, **ansible_settings(base))
    env.update(extra)
    return env


def free_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]
    finally:
        s.close()


def stop_pid(proc):
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


class Sshd(object):
    """sshd on a free 127.0.0.1 port, key-only; spec() is a receiver spec that logs in as the current user."""

    def __init__(self, tmp):
        self.dir = tmp
        self.port = free_port()
        key = os.path.join(tmp, 'host_key')
        self.user_key = os.path.join(tmp, 'user_key')
        for k in (key, self.user_key):
            subprocess.check_call(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-f', k])
        auth = os.path.join(tmp, 'authorized_keys')
        shutil.copy(self.user_key + '.pub', auth)
        os.chmod(auth, 0o600)
        self.known_hosts = os.path.join(tmp, 'known_hosts')
        cfg = os.path.join(tmp, 'sshd_config')
        with open(cfg, 'w') as f:
            f.write('Port %d\nListenAddress 127.0.0.1\nHostKey %s\nAuthorizedKeysFile %s\nPidFile %s\n'
                    'UsePAM no\nStrictModes no\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n'
                    'PermitRootLogin prohibit-password\nLogLevel ERROR\n'
                    % (self.port, key, auth, os.path.join(tmp, 'sshd.pid')))
        self.log = os.path.join(tmp, 'sshd.log')
        if os.getuid() == 0 and not os.path.isdir('/run/sshd'):
            os.makedirs('/run/sshd', 0o755)     # privilege separation directory the Debian service normally creates
        self.proc = subprocess.Popen(['/usr/sbin/sshd', '-f', cfg, '-D', '-E', self.log])
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError('sshd exited: %s' % open(self.log).read())
            try:
                socket.create_connection(('127.0.0.1', self.port), 1).close()
                return
            except OSError:
                time.sleep(0.05)
        stop_pid(self.proc)
        raise RuntimeError('sshd did not listen')

    def spec(self, **kw):
        from ansible_collections.replicator.vsphere.plugins.module_utils.mover.ssh_transport import SshReceiverSpec
        return SshReceiverSpec('127.0.0.1', user=getpass.getuser(), port=self.port, identity_file=self.user_key,
                               python=sys.executable, config_file='none',
                               options=['StrictHostKeyChecking=no', 'UserKnownHostsFile=%s' % self.known_hosts,
                                        'Ciphers=aes128-gcm@openssh.com'], **kw)
