# -*- coding: utf-8 -*-
# Copyright: (c) 2026, replicator.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Session-scoped lab for integration tests: both sites started once in a temp work directory, stopped at the end.

Use the ``lab`` fixture: ``lab.state`` (lab.json), ``lab.connect('source'|'target')`` (pyVmomi ServiceInstance),
``lab.labctl(*args)`` (runs labctl, returns its JSON), ``lab.labctl_path``, ``lab.control(site, path, ...)``.
"""

from __future__ import absolute_import, division, print_function

import json
import os
import shutil
import ssl
import subprocess
import sys
import tempfile
import urllib.parse
import urllib.request

import pytest

from integration_servers import LOCAL_HOST, Sshd, stop_pid

__metaclass__ = type

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LABCTL = os.path.join(REPO, 'tests', 'lab', 'labctl.py')


class Lab:
    """Handle on a running lab."""

    labctl_path = LABCTL

    def __init__(self, workdir, env):
        self.workdir = workdir
        self.env = env
        self.state = None
        self._sessions = []

    def labctl(self, *args):
        proc = subprocess.run([sys.executable, LABCTL, '--workdir', self.workdir] + [str(a) for a in args],
                              env=self.env, capture_output=True, text=True, timeout=300, check=False)
        if proc.returncode != 0:
            raise RuntimeError('labctl %s failed: %s' % (' '.join(map(str, args)), proc.stderr))
        return json.loads(proc.stdout)

    def inventory(self, output, vms):
        """The lab's inventory written to <output>/inventory with `replicated_vms` narrowed to `vms` (run on this
        host, with this Python); returns the hosts document, to extend and write back with write_hosts()."""
        output = str(output)
        self.labctl('inventory', '--output', os.path.join(output, 'inventory'))
        with open(os.path.join(output, 'inventory', 'hosts.yml')) as f:
            hosts = json.loads(f.read().split('\n', 1)[1])
        hosts['all']['children']['replicated_vms']['hosts'] = dict((vm, dict(LOCAL_HOST)) for vm in vms)
        self.write_hosts(output, hosts)
        return hosts

    @staticmethod
    def write_hosts(output, hosts):
        with open(os.path.join(str(output), 'inventory', 'hosts.yml'), 'w') as f:
            f.write('---\n' + json.dumps(hosts))

    def ssl_context(self, site):
        return ssl.create_default_context(cafile=self.state['sites'][site]['cafile'])

    def connect(self, site='source', password=None):
        """A pyVmomi ServiceInstance for a site (logged out at session end)."""
        from pyVim.connect import SmartConnect
        s = self.state['sites'][site]
        si = SmartConnect(host=s['host'], port=s['port'], user=s['username'], pwd=password or s['password'],
                          sslContext=self.ssl_context(site))
        self._sessions.append(si)
        return si

    def control(self, site, path, method='GET', **params):
        s = self.state['sites'][site]
        url = 'https://127.0.0.1:%d/lab/%s' % (s['port'], path)
        if params:
            url += '?' + urllib.parse.urlencode(params)
        req = urllib.request.Request(url, method=method, data=b'' if method == 'POST' else None)
        with urllib.request.urlopen(req, timeout=60, context=self.ssl_context(site)) as resp:
            return json.load(resp)

    @staticmethod
    def find_vm(si, name):
        from pyVmomi import vim
        content = si.RetrieveContent()
        view = content.viewManager.CreateContainerView(content.rootFolder, [vim.VirtualMachine], True)
        try:
            found = [vm for vm in view.view if vm.name == name]
        finally:
            view.DestroyView()
        if len(found) != 1:
            raise LookupError('%d VMs named %s' % (len(found), name))
        return found[0]

    @staticmethod
    def wait(task):
        """Wait for a task; return its result (raises the task's fault)."""
        from pyVim.task import WaitForTask
        WaitForTask(task)
        return task.info.result

    @staticmethod
    def disks(entity):
        """VirtualDisk devices of a VM or a snapshot (from its config)."""
        from pyVmomi import vim
        return [d for d in entity.config.hardware.device if isinstance(d, vim.vm.device.VirtualDisk)]

    @staticmethod
    def changed_areas(vm, snapshot, key, change_id, capacity):
        """All QueryChangedDiskAreas extents to the end of the disk, and the number of calls it took."""
        out, offset, calls = [], 0, 0
        while offset < capacity:
            info = vm.QueryChangedDiskAreas(snapshot=snapshot, deviceKey=key, startOffset=offset, changeId=change_id)
            calls += 1
            out.extend((a.start, a.length) for a in info.changedArea)
            if info.length <= 0:
                raise AssertionError('QueryChangedDiskAreas made no progress at %d' % offset)
            offset = info.startOffset + info.length
        return out, calls

    def new_vm(self, name, disks_mib=(8,), site='source', power_on=False, cbt=False, seed=None):
        """Create a VM of its own for a test (disks created empty on the site's datastore; `seed` writes guest data
        into each disk with labctl, that percentage of it). Destroy it with destroy_vm."""
        from pyVmomi import vim
        si = self.connect(site)
        content = si.RetrieveContent()
        s = self.state['sites'][site]
        dc = [e for e in content.rootFolder.childEntity if isinstance(e, vim.Datacenter)][0]
        view = content.viewManager.CreateContainerView(content.rootFolder, [vim.HostSystem], True)
        try:
            host = view.view[0]
        finally:
            view.DestroyView()
        add = vim.vm.device.VirtualDeviceSpec.Operation.add
        changes = [vim.vm.device.VirtualDeviceSpec(operation=add, device=vim.vm.device.ParaVirtualSCSIController(
            key=1000, busNumber=0, sharedBus='noSharing'))]
        for unit, mib in enumerate(disks_mib):
            backing = vim.vm.device.VirtualDisk.FlatVer2BackingInfo(diskMode='persistent', thinProvisioned=True)
            disk = vim.vm.device.VirtualDisk(key=-(unit + 1), controllerKey=1000, unitNumber=unit, backing=backing,
                                             capacityInKB=mib * 1024, capacityInBytes=mib << 20)
            changes.append(vim.vm.device.VirtualDeviceSpec(operation=add, device=disk, fileOperation='create'))
        spec = vim.vm.ConfigSpec(name=name, guestId='otherLinux64Guest', numCPUs=1, memoryMB=256,
                                 deviceChange=changes,
                                 files=vim.vm.FileInfo(vmPathName='[%s]' % sorted(s['datastores'])[0]))
        vm = self.wait(dc.vmFolder.CreateVM_Task(config=spec, pool=host.parent.resourcePool, host=host))
        if cbt:
            self.wait(vm.ReconfigVM_Task(vim.vm.ConfigSpec(changeTrackingEnabled=True)))
        if seed:
            for unit in range(len(disks_mib)):
                self.labctl('write', name, '--site', site, '--disk', unit, '--percent', seed, '--seed', unit + 1)
        if power_on:
            self.wait(vm.PowerOnVM_Task())
        return vm

    def destroy_vm(self, vm):
        """Power off (if needed) and destroy a VM made by new_vm."""
        from pyVmomi import vim
        if vm.runtime.powerState == vim.VirtualMachinePowerState.poweredOn:
            self.wait(vm.PowerOffVM_Task())
        self.wait(vm.Destroy_Task())

    def close(self):
        from pyVim.connect import Disconnect
        for si in self._sessions:
            try:
                Disconnect(si)
            except Exception:  # pylint: disable=broad-except
                pass  # the lab may already be gone


@pytest.fixture(scope='session')
def lab(tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp('lab'))
    env = dict(os.environ)
    env.setdefault('LAB_BUILD_DIR', os.path.join(REPO, '.lab'))  # share the Go build between sessions
    handle = Lab(workdir, env)
    handle.labctl('up')
    try:
        with open(os.path.join(workdir, 'lab.json')) as f:
            handle.state = json.load(f)
        yield handle
    finally:
        handle.close()
        handle.labctl('down')


@pytest.fixture(scope='session')
def sshd():
    """A real sshd on 127.0.0.1 for SSH receivers and remote store operations."""
    if not os.path.exists('/usr/sbin/sshd') or shutil.which('ssh') is None:
        pytest.skip('openssh-server / openssh-client not installed (make deps installs them)')
    tmp = tempfile.mkdtemp(prefix='rvssh', dir='/tmp')
    server = Sshd(tmp)
    yield server
    stop_pid(server.proc)
    shutil.rmtree(tmp, ignore_errors=True)
