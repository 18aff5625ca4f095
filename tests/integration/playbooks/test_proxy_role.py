# -*- coding: utf-8 -*-
# Copyright: (c) 2026, replicator.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""roles/proxy on two proxies: a source proxy (local) and a target proxy reached over a real sshd on 127.0.0.1.
The role builds each proxy's virtual environment, creates the source proxy's key, trusts the target's host key,
authorises the key on the target (restricted), and proves the receiver's Python runs there over SSH. A second run
changes nothing; the receiver settings it publishes drive a real SSH receiver."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import getpass
import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.timeout(600)

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

PLAYBOOK = """---
- name: Prepare the proxies
  hosts: proxies
  gather_facts: false
  roles:
    - role: replicator.vsphere.proxy
  post_tasks:
    - name: Save what the role published
      ansible.builtin.copy:
        content: "{{ {'receivers': proxy_receivers | default({}), 'python': proxy_python_interpreter,
                      'libraries': proxy_libraries} | to_json }}"
        dest: "{{ out_dir }}/{{ inventory_hostname }}.json"
        mode: "0600"
      delegate_to: localhost
"""


def _collections_path():
    if REPO.endswith(os.path.join('ansible_collections', 'replicator', 'vsphere')):
        return os.path.dirname(os.path.dirname(os.path.dirname(REPO)))
    return os.path.join(REPO, '.build', 'acroot')


@pytest.fixture(scope='module')
def proxies(sshd, tmp_path_factory):
    base = tmp_path_factory.mktemp('proxy-role')
    python = {'ansible_python_interpreter': sys.executable}
    inventory = {'all': {'children': {'proxies': {'hosts': {
        'src-proxy': dict(python, ansible_connection='local', proxy_role='source',
                          proxy_target_proxies=['dst-proxy'], proxy_venv=str(base / 'venv-src'),
                          proxy_ssh_key=str(base / 'src' / 'id_replicator'),
                          proxy_known_hosts_file=str(base / 'src' / 'known_hosts')),
        'dst-proxy': dict(python, ansible_connection='ssh', ansible_host='127.0.0.1', ansible_port=sshd.port,
                          ansible_user=getpass.getuser(), ansible_ssh_private_key_file=sshd.user_key,
                          ansible_ssh_common_args='-F none -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null',
                          proxy_role='target', proxy_venv=str(base / 'venv-dst'),
                          proxy_authorized_keys_file=os.path.join(sshd.dir, 'authorized_keys')),
    }}}}}
    (base / 'inventory.json').write_text(json.dumps(inventory))
    (base / 'site.yml').write_text(PLAYBOOK)
    (base / 'out').mkdir()
    return base


def _play(base, sshd):
    env = dict(os.environ, ANSIBLE_NOCOLOR='1', ANSIBLE_HOME=str(base / 'home'), ANSIBLE_LOCAL_TEMP=str(base / 'tmp'),
               ANSIBLE_COLLECTIONS_PATH=_collections_path(), ANSIBLE_HOST_KEY_CHECKING='False')
    cmd = [os.path.join(os.path.dirname(sys.executable), 'ansible-playbook'), '-i', str(base / 'inventory.json'),
           str(base / 'site.yml'), '-e', 'out_dir=%s' % (base / 'out')]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=540, check=False)


def _recap(stdout, host):
    line = [ln for ln in stdout.splitlines() if ln.startswith(host) and 'ok=' in ln][-1]
    return dict(part.split('=') for part in line.split(':', 1)[1].split())


def test_proxy_role_prepares_both_proxies_then_changes_nothing(proxies, sshd):
    proc = _play(proxies, sshd)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    src = json.loads((proxies / 'out' / 'src-proxy.json').read_text())
    dst = json.loads((proxies / 'out' / 'dst-proxy.json').read_text())
    assert dst['python'] == str(proxies / 'venv-dst' / 'bin' / 'python') and 'zstandard' in dst['libraries']
    receiver = src['receivers']['dst-proxy']
    assert receiver['host'] == '127.0.0.1' and receiver['port'] == sshd.port
    assert receiver['python'] == dst['python'] and receiver['identity_file'] == str(proxies / 'src' / 'id_replicator')

    # the key is authorised once, restricted; the target's host key is trusted by the source proxy
    pub = (proxies / 'src' / 'id_replicator.pub').read_text().split()
    lines = [ln for ln in open(os.path.join(sshd.dir, 'authorized_keys')).read().splitlines() if pub[1] in ln]
    assert len(lines) == 1 and lines[0].startswith('restrict ssh-ed25519 ')
    assert '[127.0.0.1]:%d' % sshd.port in (proxies / 'src' / 'known_hosts').read_text()

    # idempotent: a second run changes nothing on either proxy
    again = _play(proxies, sshd)
    assert again.returncode == 0, again.stdout[-4000:]
    assert _recap(again.stdout, 'src-proxy')['changed'] == '0', again.stdout[-3000:]
    assert _recap(again.stdout, 'dst-proxy')['changed'] == '0', again.stdout[-3000:]
    assert len([ln for ln in open(os.path.join(sshd.dir, 'authorized_keys')) if pub[1] in ln]) == 1


def test_published_receiver_settings_run_a_real_receiver(proxies, sshd):
    """The receiver settings the role publishes (key, known_hosts, target venv python) open a real SSH receiver."""
    from ansible_collections.replicator.vsphere.plugins.module_utils.mover import ssh_transport
    spec = json.loads((proxies / 'out' / 'src-proxy.json').read_text())['receivers']['dst-proxy']
    receiver = ssh_transport.SshReceiverSpec(spec['host'], user=spec['user'], port=spec['port'],
                                             identity_file=spec['identity_file'], python=spec['python'],
                                             options=spec['ssh_options'], config_file='none')
    proc = subprocess.run(receiver.argv()[:-1] + [spec['python'] + ' -c "import zstandard, xxhash; print(42)"'],
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0 and proc.stdout.strip() == '42', proc.stderr


def test_bad_role_input_is_refused_by_the_argument_spec(proxies, sshd):
    bad = dict(json.loads((proxies / 'inventory.json').read_text()))
    bad['all']['children']['proxies']['hosts']['src-proxy']['proxy_role'] = 'sender'
    (proxies / 'inventory.json').write_text(json.dumps(bad))
    try:
        proc = _play(proxies, sshd)
    finally:
        bad['all']['children']['proxies']['hosts']['src-proxy']['proxy_role'] = 'source'
        (proxies / 'inventory.json').write_text(json.dumps(bad))
    assert proc.returncode != 0
    assert 'proxy_role' in proc.stdout and 'sender' in proc.stdout
