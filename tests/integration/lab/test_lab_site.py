# -*- coding: utf-8 -*-
# Copyright: (c) 2026, replicator.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The lab's sites: login, inventory, real disk files, SOAP counters, target-side VM lifecycle."""

from __future__ import absolute_import, division, print_function

import json
import os
import re
import ssl
import subprocess
import sys
import tempfile
import urllib.request

import pytest

__metaclass__ = type

pyVmomi = pytest.importorskip('pyVmomi')
vim = pyVmomi.vim
vmodl = pyVmomi.vmodl


def local_path(lab, site, ds_path):
    m = re.match(r'^\[([^\]]+)\] (.*)$', ds_path)
    return os.path.join(lab.state['sites'][site]['datastores'][m.group(1)], m.group(2))


def children(si, kind):
    content = si.RetrieveContent()
    view = content.viewManager.CreateContainerView(content.rootFolder, [kind], True)
    try:
        return list(view.view)
    finally:
        view.DestroyView()


@pytest.mark.parametrize('site', ['source', 'target'])
def test_login_and_bad_password(lab, site):
    si = lab.connect(site)
    assert si.content.sessionManager.currentSession.userName == lab.state['sites'][site]['username']
    with pytest.raises(vim.fault.InvalidLogin):
        lab.connect(site, password=lab.state['sites'][site]['password'] + 'x')


def test_source_inventory(lab):
    si = lab.connect('source')
    assert [dc.name for dc in children(si, vim.Datacenter)] == ['SRC-DC']
    clusters = children(si, vim.ClusterComputeResource)
    assert [c.name for c in clusters] == ['SRC-Cluster']
    assert sorted(h.name for h in clusters[0].host) == ['src-esx01', 'src-esx02']
    assert [ds.name for ds in children(si, vim.Datastore)] == ['src-ds1']
    vms = {vm.name: vm for vm in children(si, vim.VirtualMachine)}
    assert sorted(vms) == ['app01', 'db01', 'web01', 'web02']
    assert {n: vm.runtime.powerState for n, vm in vms.items()} == dict.fromkeys(vms, 'poweredOn')
    sizes = {n: [d.capacityInBytes >> 20 for d in lab.disks(vm)] for n, vm in vms.items()}
    assert sizes == {'app01': [64, 96], 'db01': [64, 32, 48], 'web01': [64], 'web02': [64]}


def test_target_inventory(lab):
    si = lab.connect('target')
    assert si.content.about.apiType == 'HostAgent'
    assert [h.name for h in children(si, vim.HostSystem)] == ['dr-esx01']
    assert [ds.name for ds in children(si, vim.Datastore)] == ['dr-ds1']
    assert {'VM Network', 'DR Network'} <= {n.name for n in children(si, vim.Network)}
    assert children(si, vim.VirtualMachine) == []


def test_disk_files_are_real(lab):
    vm = lab.find_vm(lab.connect('source'), 'app01')
    assert re.match(r'^[0-9a-f-]{36}$', vm.config.instanceUuid)
    disks = lab.disks(vm)
    assert [d.key for d in disks] == [2000, 2001]
    for d in disks:
        assert d.capacityInBytes == d.capacityInKB * 1024
        assert re.match(r'^6000C29[0-9a-f-]+$', d.backing.uuid)
        desc = local_path(lab, 'source', d.backing.fileName)
        with open(desc) as f:
            text = f.read()
        assert 'createType="vmfs"' in text
        m = re.search(r'^RW (\d+) VMFS "([^"]+)"$', text, re.M)
        assert int(m.group(1)) * 512 == d.capacityInBytes
        flat = os.path.join(os.path.dirname(desc), m.group(2))
        assert m.group(2) == os.path.basename(desc)[:-5] + '-flat.vmdk'
        st = os.stat(flat)
        assert st.st_size == d.capacityInBytes
        allocated = st.st_blocks * 512 / st.st_size
        assert 0.2 < allocated < 0.8, allocated  # seeded: a mix of data and holes


def test_web02_shares_most_blocks_with_web01(lab):
    si = lab.connect('source')
    data = {}
    for name in ('web01', 'web02'):
        d = lab.disks(lab.find_vm(si, name))[0]
        with open(local_path(lab, 'source', d.backing.fileName).replace('.vmdk', '-flat.vmdk'), 'rb') as f:
            data[name] = f.read()
    blocks = len(data['web01']) // 65536
    same = sum(data['web01'][i * 65536:(i + 1) * 65536] == data['web02'][i * 65536:(i + 1) * 65536] for i in range(blocks))
    assert 0.6 < same / blocks < 1.0


def test_soap_counter(lab):
    si = lab.connect('source')
    vm = lab.find_vm(si, 'web01')
    lab.control('source', 'counters/reset', 'POST')
    for _i in range(3):
        si.CurrentTime()
    with pytest.raises(vmodl.fault.InvalidArgument):
        vm.QueryChangedDiskAreas(snapshot=None, deviceKey=9999, startOffset=0, changeId='*')
    counts = lab.control('source', 'counters')
    assert counts['CurrentTime'] == 3
    assert counts['QueryChangedDiskAreas'] == 1


def test_extra_config_round_trip(lab):
    vm = lab.find_vm(lab.connect('source'), 'web01')

    def values():
        return [(o.key, o.value) for o in vm.config.extraConfig if o.key.startswith('replicator.')]

    for value in ('one', 'two'):
        spec = vim.vm.ConfigSpec(extraConfig=[vim.option.OptionValue(key='replicator.test', value=value)])
        lab.wait(vm.ReconfigVM_Task(spec))
    assert values() == [('replicator.test', 'two')]
    lab.wait(vm.ReconfigVM_Task(vim.vm.ConfigSpec(extraConfig=[vim.option.OptionValue(key='replicator.test', value='')])))
    assert values() == []


def test_target_create_grow_destroy(lab):
    si = lab.connect('target')
    dc = children(si, vim.Datacenter)[0]
    host = children(si, vim.HostSystem)[0]
    scsi = vim.vm.device.ParaVirtualSCSIController(key=-100, busNumber=0, sharedBus='noSharing')
    disk = vim.vm.device.VirtualDisk(key=-101, controllerKey=-100, unitNumber=0, capacityInKB=8192, capacityInBytes=8 << 20)
    disk.backing = vim.vm.device.VirtualDisk.FlatVer2BackingInfo(
        fileName='[dr-ds1] replica01/replica01.vmdk', diskMode='persistent', thinProvisioned=True)
    add = vim.vm.device.VirtualDeviceSpec.Operation.add
    spec = vim.vm.ConfigSpec(name='replica01', guestId='otherLinux64Guest', files=vim.vm.FileInfo(vmPathName='[dr-ds1]'),
                             deviceChange=[vim.vm.device.VirtualDeviceSpec(operation=add, device=scsi),
                                           vim.vm.device.VirtualDeviceSpec(operation=add, device=disk, fileOperation='create')],
                             extraConfig=[vim.option.OptionValue(key='replicator.state', value='{"v": 1}')])
    vm = lab.wait(dc.vmFolder.CreateVM_Task(config=spec, pool=host.parent.resourcePool, host=host))
    d = lab.disks(vm)[0]
    assert d.key == 2000 and d.capacityInBytes == 8 << 20 and d.backing.uuid
    desc = local_path(lab, 'target', d.backing.fileName)
    flat = desc.replace('.vmdk', '-flat.vmdk')
    with open(desc) as f:
        assert 'RW 16384 VMFS "replica01-flat.vmdk"' in f.read()
    assert os.path.getsize(flat) == 8 << 20
    assert [(o.key, o.value) for o in vm.config.extraConfig if o.key == 'replicator.state'] == [('replicator.state', '{"v": 1}')]

    d.capacityInKB, d.capacityInBytes = 16384, 16 << 20
    edit = vim.vm.device.VirtualDeviceSpec(operation=vim.vm.device.VirtualDeviceSpec.Operation.edit, device=d)
    lab.wait(vm.ReconfigVM_Task(vim.vm.ConfigSpec(deviceChange=[edit])))
    assert lab.disks(vm)[0].capacityInBytes == 16 << 20
    assert os.path.getsize(flat) == 16 << 20
    with open(desc) as f:
        assert 'RW 32768 VMFS "replica01-flat.vmdk"' in f.read()

    # datastore file access over /folder (GET/PUT), as replica state files use it
    s = lab.state['sites']['target']
    url = 'https://127.0.0.1:%d/folder/replica01/state.bin?dcPath=%s&dsName=dr-ds1' % (s['port'], dc.name)
    ctx = ssl.create_default_context(cafile=s['cafile'])
    payload = os.urandom(10000)
    urllib.request.urlopen(urllib.request.Request(url, data=payload, method='PUT'), context=ctx, timeout=30).close()
    with urllib.request.urlopen(url, context=ctx, timeout=30) as resp:
        assert resp.read() == payload

    lab.wait(vm.Destroy_Task())
    assert not os.path.exists(os.path.dirname(desc))
    assert children(si, vim.VirtualMachine) == []


def test_up_down_leaves_no_process_or_stray_file(lab):
    tmp = tempfile.gettempdir()
    strays = {n for n in os.listdir(tmp) if 'vcsim' in n or 'labd' in n}
    with tempfile.TemporaryDirectory(prefix='replicator-lab-') as workdir:
        cmd = [sys.executable, lab.labctl_path, '--workdir', workdir]
        env = dict(lab.env, LAB_DISK_SCALE='10')
        subprocess.run(cmd + ['up'], env=env, check=True, capture_output=True, timeout=120)
        with open(os.path.join(workdir, 'lab.json')) as f:
            pids = [s['pid'] for s in json.load(f)['sites'].values()]
        assert all(os.path.exists('/proc/%d' % p) for p in pids)
        status = json.loads(subprocess.run(cmd + ['status'], env=env, check=True, capture_output=True, timeout=60).stdout)
        assert status['up'] is True
        subprocess.run(cmd + ['down'], env=env, check=True, capture_output=True, timeout=60)
        for pid in pids:
            assert not os.path.exists('/proc/%d' % pid) or open('/proc/%d/stat' % pid).read().split(') ')[1][0] == 'Z'
        assert not os.path.exists(os.path.join(workdir, 'lab.json'))
        status = json.loads(subprocess.run(cmd + ['status'], env=env, check=True, capture_output=True, timeout=60).stdout)
        assert status['up'] is False
    assert {n for n in os.listdir(tmp) if 'vcsim' in n or 'labd' in n} <= strays
