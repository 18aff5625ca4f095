# -*- coding: utf-8 -*-
# Copyright: (c) 2026, replicator.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""playbooks/replicate.yml as users run it, for the fault tests: an inventory of the lab narrowed to a test's VMs
(nothing shortened: the role's defaults apply), ansible-playbook's environment and command line, its reports."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json
import os
import subprocess
import sys

from faults_lab import REPO_ROOT
from integration_servers import playbook_env


def env(base):
    """ansible-playbook's environment (integration_servers.playbook_env), with its log under `base` too."""
    return playbook_env(base, ANSIBLE_LOG_PATH=os.path.join(base, 'ansible.log'))


def argv(base, *extra):
    return [os.path.join(os.path.dirname(sys.executable), 'ansible-playbook'), '-i', os.path.join(base, 'inventory'),
            os.path.join(REPO_ROOT, 'playbooks', 'replicate.yml')] + list(extra)


def play(base, name, *extra):
    """Run replicate.yml to its end; its output is kept in <base>/<name>.out."""
    proc = subprocess.run(argv(base, *extra), env=env(base), capture_output=True, text=True, timeout=600,
                          check=False)
    with open(os.path.join(base, name + '.out'), 'w') as f:
        f.write(proc.stdout + proc.stderr)
    return proc


def inventory(lab, base, vms):
    """The lab's inventory in <base>/inventory, narrowed to `vms`."""
    lab.inventory(base, vms)
    return base


def report(report_dir):
    """{vm: row} of report.json in `report_dir`."""
    with open(os.path.join(report_dir, 'report.json')) as f:
        return dict((vm['vm'], vm) for vm in json.load(f)['vms'])


def compare(lab, vm):
    """Whether every replica disk of `vm` equals its source disk (labctl compare)."""
    out = subprocess.run([sys.executable, lab.labctl_path, '--workdir', lab.workdir, 'compare', vm],
                         capture_output=True, text=True, check=False)
    return json.loads(out.stdout)['equal']
