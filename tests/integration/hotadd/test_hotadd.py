# -*- coding: utf-8 -*-
# Copyright: (c) 2026, replicator.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""disk_replicate with the hot-add transport on both sides, against the lab's proxy VMs (a disk attached to a
proxy appears under the site's device_dir by its UUID, with real bytes): full then incremental byte-exact, a run
killed between attach and detach followed by a clean rerun, refusals, proxy selection with a limit, replica_info
showing nothing left attached."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from ansible_collections.replicator.vsphere.tests.integration.modules.conftest import (
    AnsibleModuleRunner, PLAYBOOK,
)
from ansible_collections.replicator.vsphere.tests.integration.replica.conftest import target_args

pytestmark = pytest.mark.timeout(600)

MIB = 1 << 20
VM = 'hadd01'
SRC_PROXIES = ('hadd-psrc1', 'hadd-psrc2')
DR_PROXIES = ('hadd-pdr1', 'hadd-pdr2')


def _snapshot(lab, vm, name):
    return lab.wait(vm.CreateSnapshot_Task(name, 'replication cycle', False, False))


@pytest.fixture(scope='module')
def setup(lab, conn, run):
    """A source VM with CBT and data, its replica on the DR host, two proxy VMs per site."""
    vm = lab.new_vm(VM, disks_mib=(8, 5), cbt=True, seed=40)
    register = dict(conn, name=VM, datacenter='SRC-DC', target_host='dr-esx01', target_datastore='dr-ds1',
                    replica_name='hadd-{name}')
    created = run('replica_register', register)
    assert created['changed'] and not created.get('failed'), created.output
    for name in SRC_PROXIES:
        lab.labctl('proxy', name, '--site', 'source')
    for name in DR_PROXIES:
        lab.labctl('proxy', name, '--site', 'target')
    yield vm
    run('replica_register', dict(register, state='absent'))
    for site, names in (('source', SRC_PROXIES), ('target', DR_PROXIES)):
        si = lab.connect(site)
        for name in names:
            lab.destroy_vm(lab.find_vm(si, name))
    lab.destroy_vm(vm)


def _args(lab, conn, snapshot, key, **extra):
    src, tgt = lab.state['sites']['source'], lab.state['sites']['target']
    args = dict(conn, name=VM, snapshot=snapshot, disk_key=key, retention=3,
                transport='hotadd', source_proxy_pool=[SRC_PROXIES[0]], device_dir=src['device_dir'],
                target_transport='hotadd', target_proxy_pool=[DR_PROXIES[0]], target_device_dir=tgt['device_dir'],
                target_datastore_paths=tgt['datastores'])
    args.update(extra)
    return args


def _checksums(lab, disk, snapshot):
    source = lab.labctl('checksum', VM, '--disk', disk, '--snapshot', snapshot)
    replica = lab.labctl('checksum', 'hadd-' + VM, '--disk', disk, '--site', 'target')
    return source['disks'][0]['sha256'], replica['disks'][0]['sha256']


def _devices(lab):
    out = []
    for site in ('source', 'target'):
        path = lab.state['sites'][site]['device_dir']
        out.extend(os.listdir(path) if os.path.isdir(path) else [])
    return out


def _nothing_attached(lab, run):
    info = run('replica_info', target_args(lab))
    assert not info.failed, info.output
    assert info['proxy_attachments'] == []
    replica = [r for r in info['replicas'] if r['name'] == 'hadd-' + VM][0]
    assert replica['proxy_attachments'] == []
    assert _devices(lab) == []
    for site in ('source', 'target'):
        si = lab.connect(site)
        for name in (SRC_PROXIES if site == 'source' else DR_PROXIES):
            assert lab.disks(lab.find_vm(si, name)) == [], '%s still has disks' % name


def test_full_then_incremental_both_sides_hotadd(lab, conn, run, setup):
    vm = setup
    snap1 = _snapshot(lab, vm, 'hot-1')
    for index, key in enumerate((2000, 2001)):
        checked = run('disk_replicate', _args(lab, conn, snap1._moId, key), check=True, site='source')
        assert not checked.failed and checked['plan']['kind'] == 'full', checked.output
        assert checked['hotadd']['source']['proxy'] == SRC_PROXIES[0] and not checked['hotadd']['source']['attached']
        assert _devices(lab) == []
        full = run('disk_replicate', _args(lab, conn, snap1._moId, key, cycle_id='h1'), site='source')
        assert full['changed'] and full['plan']['kind'] == 'full', full.output
        for side, proxy in (('source', SRC_PROXIES[0]), ('target', DR_PROXIES[0])):
            assert full['hotadd'][side]['proxy'] == proxy and not full['hotadd'][side]['attached']
            assert os.path.basename(full['hotadd'][side]['device']).startswith('wwn-0x6000c29')
        assert full['hotadd']['source']['mode'] == 'independent_nonpersistent'
        assert full['hotadd']['target']['mode'] == 'independent_persistent'
        assert full['disk']['source'] == full['hotadd']['source']['device']
        source, replica = _checksums(lab, index, 'hot-1')
        assert source == replica
        print('disk %d full over hot-add: %d bytes written, SOAP calls on the source %s' % (
            key, full['stats']['bytes_written'], full['soap']))
    _nothing_attached(lab, run)
    lab.wait(snap1.RemoveSnapshot_Task(False))

    lab.labctl('write', VM, '--disk', 1, '--offset', 2 * MIB + 512, '--length', 30000, '--seed', 11)
    snap2 = _snapshot(lab, vm, 'hot-2')
    try:
        inc = run('disk_replicate', _args(lab, conn, snap2._moId, 2001, cycle_id='h2'), site='source')
        assert inc['changed'] and inc['plan']['kind'] == 'cbt', inc.output
        assert inc['stats']['bytes_written'] <= 2 * 65536
        source, replica = _checksums(lab, 1, 'hot-2')
        assert source == replica
        _nothing_attached(lab, run)
    finally:
        lab.wait(snap2.RemoveSnapshot_Task(False))


def _start_module(lab, tmp_path, args):
    """disk_replicate in an ansible-playbook of its own session, so the test can kill it mid-copy."""
    runner = AnsibleModuleRunner(lab, str(tmp_path))
    params = dict(runner.connection('source'))
    params.update(args)
    base = str(tmp_path / 'crash')
    with open(base + '.vars.json', 'w') as f:
        json.dump({'module_args': params, 'ansible_python_interpreter': sys.executable}, f)
    with open(base + '.yml', 'w') as f:
        f.write(PLAYBOOK % 'disk_replicate')
    cmd = [os.path.join(os.path.dirname(sys.executable), 'ansible-playbook'), '-i', 'localhost,', '-c', 'local',
           '-e', '@' + base + '.vars.json', base + '.yml']
    env = dict(runner.env, MODULE_RESULT_FILE=base + '.result.json')
    return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)


def _descendants(pid):
    """Pids of every process below `pid` (Ansible runs the module in a session of its own)."""
    children = {}
    for entry in os.listdir('/proc'):
        if entry.isdigit():
            try:
                with open('/proc/%s/stat' % entry) as f:
                    ppid = int(f.read().rsplit(')', 1)[1].split()[1])
            except (IOError, OSError, ValueError, IndexError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo and len(out) < 1000:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def _kill_tree(proc):
    """SIGKILL the ansible-playbook this test started and everything it started: a crash, no cleanup code runs."""
    for pid in [proc.pid] + _descendants(proc.pid):
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    proc.wait(30)


def test_crash_between_attach_and_detach_then_clean_rerun(lab, conn, run, setup, tmp_path):
    vm = setup
    lab.labctl('write', VM, '--disk', 0, '--percent', 30, '--seed', 21)
    snap = _snapshot(lab, vm, 'hot-crash')
    try:
        # throttled so the copy is still running when both disks are attached
        proc = _start_module(lab, tmp_path, _args(lab, conn, snap._moId, 2000, cycle_id='hc', bandwidth_limit=0.25))
        try:
            deadline = time.monotonic() + 120
            while len(_devices(lab)) < 2 and time.monotonic() < deadline and proc.poll() is None:
                time.sleep(0.1)
            assert len(_devices(lab)) == 2, 'the module never had both disks attached'
        finally:
            _kill_tree(proc)
        left = run('replica_info', target_args(lab))
        assert [a['proxy'] for a in left['proxy_attachments']] == [DR_PROXIES[0]], left.output
        assert left['proxy_attachments'][0]['mode'] == 'rw'
        assert len(_devices(lab)) == 2  # nothing detached the disks of the killed run

        rerun = run('disk_replicate', _args(lab, conn, snap._moId, 2000, cycle_id='hc'), site='source')
        assert rerun['changed'] and not rerun.failed, rerun.output
        for side, proxy in (('source', SRC_PROXIES[0]), ('target', DR_PROXIES[0])):
            cleaned = rerun['hotadd'][side]['leftovers_detached']
            assert len(cleaned) == 1 and proxy in cleaned[0], rerun['hotadd']
        source, replica = _checksums(lab, 0, 'hot-crash')
        assert source == replica
        _nothing_attached(lab, run)
    finally:
        lab.wait(snap.RemoveSnapshot_Task(False))


def _attach_by_hand(lab, site, proxy_name, file_name, capacity, mode):
    """Attach a disk to a proxy the way an administrator would: no marker of ours."""
    from pyVmomi import vim
    si = lab.connect(site)
    proxy = lab.find_vm(si, proxy_name)
    backing = vim.vm.device.VirtualDisk.FlatVer2BackingInfo(fileName=file_name, diskMode=mode)
    disk = vim.vm.device.VirtualDisk(key=-1, controllerKey=1000, unitNumber=3, backing=backing,
                                     capacityInKB=capacity // 1024)
    lab.wait(proxy.ReconfigVM_Task(vim.vm.ConfigSpec(deviceChange=[
        vim.vm.device.VirtualDeviceSpec(operation='add', device=disk)])))
    return proxy


def _detach_by_hand(lab, proxy):
    from pyVmomi import vim
    lab.wait(proxy.ReconfigVM_Task(vim.vm.ConfigSpec(deviceChange=[
        vim.vm.device.VirtualDeviceSpec(operation='remove', device=d) for d in lab.disks(proxy)])))


def test_refusals(lab, conn, run, setup):
    vm = setup
    snap = _snapshot(lab, vm, 'hot-refuse')
    try:
        own = run('disk_replicate', _args(lab, conn, snap._moId, 2000, source_proxy_pool=[VM]), site='source')
        assert own.failed and own['fault'] == 'NoProxy', own.output
        assert 'never hot-added to its own VM' in own['msg']

        replica = lab.find_vm(lab.connect('target'), 'hadd-' + VM)
        disk = lab.disks(replica)[0]
        holder = _attach_by_hand(lab, 'target', DR_PROXIES[1], disk.backing.fileName, disk.capacityInBytes,
                                 'independent_persistent')
        try:
            busy = run('disk_replicate', _args(lab, conn, snap._moId, 2000), site='source')
            assert busy.failed and busy['fault'] == 'DiskInUse', busy.output
            assert DR_PROXIES[1] in busy['msg']
            # a run whose pool holds that proxy never detaches a disk it did not attach
            again = run('disk_replicate', _args(lab, conn, snap._moId, 2000, target_proxy_pool=[DR_PROXIES[1]]),
                        site='source')
            assert again.failed and again['fault'] == 'DiskInUse', again.output
            assert [d.backing.fileName for d in lab.disks(holder)] == [disk.backing.fileName]
        finally:
            _detach_by_hand(lab, holder)
        no_uuid = lab.labctl('proxy', 'hadd-nouuid', '--site', 'source', '--no-enable-uuid')
        try:
            plain = run('disk_replicate', _args(lab, conn, snap._moId, 2000, source_proxy_pool=['hadd-nouuid']),
                        site='source')
            assert plain.failed and 'disk.EnableUUID' in plain['msg'], plain.output
        finally:
            lab.destroy_vm(lab.find_vm(lab.connect('source'), no_uuid['name']))
        _nothing_attached(lab, run)
    finally:
        lab.wait(snap.RemoveSnapshot_Task(False))


def test_proxy_selection_with_a_limit(lab, conn, run, setup):
    """A live hot-add of this test process keeps proxy 1 at its limit of 1 disk: the run takes proxy 2, and a pool
    of proxy 1 alone is refused."""
    from ansible_collections.replicator.vsphere.plugins.module_utils.hotadd import attach as hotadd
    from ansible_collections.replicator.vsphere.plugins.module_utils.vsphere.client import connect
    vm = setup
    src = lab.state['sites']['source']
    client = connect(dict(hostname=src['host'], port=src['port'], username=src['username'],
                          password=src['password'], ca_path=src['cafile']))
    snap = _snapshot(lab, vm, 'hot-limit')
    busy = None
    try:
        first = lab.disks(snap)[0]  # disk 2000 as the snapshot froze it, held by this process on proxy 1
        held = {'file': first.backing.fileName, 'uuid': first.backing.uuid, 'capacity_bytes': first.capacityInBytes}
        busy = hotadd.attach(client, [SRC_PROXIES[0]], held, {'moid': vm._moId, 'name': VM}, False, 4,
                             src['device_dir'], 'test-limit', 60)
        assert busy.attached
        pool = list(SRC_PROXIES)
        moved = run('disk_replicate', _args(lab, conn, snap._moId, 2001, source_proxy_pool=pool, proxy_max_disks=1),
                    site='source')
        assert not moved.failed and moved['hotadd']['source']['proxy'] == SRC_PROXIES[1], moved.output
        full = run('disk_replicate', _args(lab, conn, snap._moId, 2001, source_proxy_pool=[SRC_PROXIES[0]],
                                           proxy_max_disks=1), site='source')
        assert full.failed and full['fault'] == 'NoProxy' and 'limit 1' in full['msg'], full.output
        # the disk of the live attachment stayed: a run never detaches what a living run attached
        assert len(lab.disks(lab.find_vm(lab.connect('source'), SRC_PROXIES[0]))) == 1
    finally:
        if busy is not None:
            hotadd.detach(client, busy.proxy['vm'], busy.disk['uuid_hex'], 60)
        client.close()
        lab.wait(snap.RemoveSnapshot_Task(False))
    _nothing_attached(lab, run)


def test_read_only_attach_keeps_the_disk_unchanged(lab, setup):
    """The lab's non-persistent attach: writes to the device never reach the snapshot disk."""
    vm = setup
    snap = _snapshot(lab, vm, 'hot-ro')
    try:
        before = lab.labctl('checksum', VM, '--disk', 0, '--snapshot', 'hot-ro')['disks'][0]['sha256']
        disk = lab.disks(snap)[0]
        proxy = _attach_by_hand(lab, 'source', SRC_PROXIES[1], disk.backing.fileName, disk.capacityInBytes,
                                'independent_nonpersistent')
        try:
            path = os.path.join(lab.state['sites']['source']['device_dir'],
                                'wwn-0x' + disk.backing.uuid.replace('-', '').lower())
            assert oct(os.stat(path).st_mode & 0o777) == '0o444'
            with open(path, 'r+b') as f:  # root may still open it: the write lands in the redo copy
                f.write(b'\xff' * 65536)
        finally:
            _detach_by_hand(lab, proxy)
        assert not os.path.exists(path)
        after = lab.labctl('checksum', VM, '--disk', 0, '--snapshot', 'hot-ro')['disks'][0]['sha256']
        assert before == after
    finally:
        lab.wait(snap.RemoveSnapshot_Task(False))
