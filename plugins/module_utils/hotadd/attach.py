# -*- coding: utf-8 -*-
# Copyright: (c) 2026, replicator.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Hot-add ("virtual appliance") transport, control plane: attach a disk to a proxy VM through the vSphere API,
find it there as a block device by its UUID, detach it afterwards.

attach:  read every VM of the site once (proxies, who holds the disk, markers) and the datastore's host mounts ->
         refuse a disk open for writing elsewhere -> pick a proxy of the pool (sees the datastore, powered on,
         disk.EnableUUID, a free SCSI slot, below its disk limit, never the disk's own VM) -> one ReconfigVM adding
         the existing disk (no file operation) together with our marker in the proxy's extraConfig.
detach:  one ReconfigVM removing the device (never its file) and the marker; only a disk with our marker.
leftovers: at the start of a run, markers of runs that cannot be alive any more (hotadd_select.is_leftover) are
         detached on the pool's proxies.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import contextlib
import inspect
import json
import os
import socket
import subprocess
import time

try:
    from pyVmomi import vim
except ImportError:  # pragma: no cover - the client reports the missing library
    vim = None

from ansible_collections.replicator.vsphere.plugins.module_utils.hotadd import device as hotadd_device
from ansible_collections.replicator.vsphere.plugins.module_utils.hotadd.selection import (
    LEASE_SECONDS, SelectionError, choose_proxy, encode_marker, free_slot, is_leftover, marker_key, markers,
    write_holders,
)
from ansible_collections.replicator.vsphere.plugins.module_utils.vsphere.vm_disks import disk_facts, split_datastore_path
from ansible_collections.replicator.vsphere.plugins.module_utils.vsphere.errors import NotFound, VsphereError
from ansible_collections.replicator.vsphere.plugins.module_utils.vsphere.properties import fetch, fetch_many, find_all
from ansible_collections.replicator.vsphere.plugins.module_utils.vsphere.tasks import run_task

VM_PATHS = ['name', 'config.uuid', 'config.extraConfig', 'config.hardware.device', 'config.changeVersion',
            'runtime.powerState', 'runtime.host']
RECONFIG_TRIES = 5
READ_ONLY_MODE = 'independent_nonpersistent'
WRITE_MODE = 'independent_persistent'


class HotaddError(VsphereError):
    """A disk cannot be hot-added, found or detached as asked."""


def this_process():
    """{'host', 'boot', 'pid', 'start'} of the running module (start: the process start time in clock ticks)."""
    return {'host': socket.gethostname(), 'boot': _read('/proc/sys/kernel/random/boot_id'), 'pid': os.getpid(),
            'start': _start_ticks(os.getpid())}


def _read(path):
    try:
        with open(path) as f:
            return f.read().strip()
    except (IOError, OSError):
        return None


def _stat_fields(pid):
    """The fields of /proc/<pid>/stat after the command name (state first), or None."""
    stat = _read('/proc/%s/stat' % pid)
    return stat.rsplit(')', 1)[-1].split() if stat else None


def _start_ticks(pid):
    fields = _stat_fields(pid)
    return fields[19] if fields and len(fields) > 19 else None


def process_alive(pid, start):
    """Whether process `pid` with that start time runs on this host (a reused pid has another start time). A zombie
    (killed, not yet reaped: its parent died with it and init has not collected it) does not run any more."""
    if not pid:
        return False
    fields = _stat_fields(pid)
    if not fields or len(fields) <= 19 or fields[0] in ('Z', 'X'):
        return False
    return start is None or fields[19] == start


def _bios_uuid_forms():
    """The BIOS UUID of this machine as a VM's config.uuid would show it (both byte orders), or ()."""
    raw = (_read('/sys/class/dmi/id/product_uuid') or '').lower()
    parts = raw.split('-')
    if len(parts) != 5:
        return ()

    def swap(text):
        return ''.join(reversed([text[i:i + 2] for i in range(0, len(text), 2)]))
    return (raw, '-'.join([swap(parts[0]), swap(parts[1]), swap(parts[2])] + parts[3:]))


class SiteView(object):
    """Every VM of a site with what hot-add decisions need (one container-view read)."""

    def __init__(self, client):
        self.client = client
        self.vms = []
        for vm, props in find_all(client, vim.VirtualMachine, VM_PATHS):
            extra = [(o.key, o.value) for o in props['config.extraConfig'] or []]
            self.vms.append({
                'vm': vm, 'moid': vm._moId, 'name': props['name'], 'props': props, 'uuid': props['config.uuid'],
                'powered_on': str(props['runtime.powerState']) == 'poweredOn',
                'host': props['runtime.host']._moId if props['runtime.host'] is not None else None,
                'enable_uuid': any(k.lower() == 'disk.enableuuid' and str(v).upper() == 'TRUE' for k, v in extra),
                'disks': disk_facts(props['config.hardware.device']), 'markers': markers(extra)})

    def pool(self, names):
        """The proxies named in `names`, in that order; NotFound names the missing ones."""
        by_name = {}
        for rec in self.vms:
            by_name.setdefault(rec['name'], []).append(rec)
        missing = [n for n in names if n not in by_name]
        if missing:
            raise NotFound('Proxy VM %s not found on %s' % (', '.join("'%s'" % n for n in missing), self.client.endpoint),
                           fault='NotFound', hint='List the proxy VMs by their vSphere names in the proxy pool.')
        doubles = [n for n in names if len(by_name[n]) > 1]
        if doubles:
            raise HotaddError('Proxy VM name %s matches several VMs' % ', '.join(doubles), fault='Ambiguous')
        return [by_name[n][0] for n in names]


def datastore_hosts(client, datastore, proxies):
    """Moids of the proxies' hosts that mount `datastore` and can access it (two round trips: the hosts'
    datastore lists, then those datastores' names)."""
    refs = dict((p['props']['runtime.host']._moId, p['props']['runtime.host']) for p in proxies
                if p['props']['runtime.host'] is not None)
    mounts = fetch_many(client, list(refs.values()), ['datastore'])
    stores = dict((ds._moId, ds) for _host, props in mounts for ds in props['datastore'] or [])
    usable = set(ds._moId for ds, props in fetch_many(client, list(stores.values()), ['name', 'summary.accessible'])
                 if props['name'] == datastore and props['summary.accessible'] is not False)
    return set(host._moId for host, props in mounts if any(ds._moId in usable for ds in props['datastore'] or []))


def _reasons(proxy, disk, owner_moid, hosts, datastore):
    reasons = []
    if proxy['moid'] == owner_moid:
        reasons.append('it is the VM the disk belongs to (a disk is never hot-added to its own VM)')
    if not proxy['powered_on']:
        reasons.append('powered off')
    if not proxy['enable_uuid']:
        reasons.append('disk.EnableUUID is not TRUE (the guest would show no /dev/disk/by-id name for the disk)')
    if proxy['host'] not in hosts:
        reasons.append("its host does not see datastore '%s'" % datastore)
    if any(hotadd_device.uuid_hex(d['uuid']) == disk['uuid_hex'] for d in proxy['disks'] if d.get('uuid')):
        reasons.append('it already has a disk with UUID %s' % disk['uuid'])
    if _slot(proxy) is None:
        reasons.append('no free SCSI slot (add a controller)')
    return reasons


def _slot(proxy):
    controllers = [(d.key, d.busNumber) for d in proxy['props']['config.hardware.device'] or []
                   if isinstance(d, vim.vm.device.VirtualSCSIController)]
    used = set((d.controllerKey, d.unitNumber) for d in proxy['props']['config.hardware.device'] or []
               if d.unitNumber is not None)
    return free_slot(controllers, used)


class Attachment(object):
    """One disk attached (or, in check mode, to be attached) to a proxy."""

    def __init__(self, client, proxy, disk, mode, device_dir):
        self.client = client
        self.proxy = proxy
        self.disk = disk
        self.mode = mode
        self.device_dir = device_dir
        self.attached = False
        self.path = None

    def facts(self):
        return {'proxy': self.proxy['name'], 'proxy_moid': self.proxy['moid'], 'file': self.disk['file'],
                'uuid': self.disk['uuid'], 'mode': self.mode, 'device': self.path or os.path.join(
                    self.device_dir, hotadd_device.device_names(self.disk['uuid'])[0]), 'attached': self.attached}


def attach(client, pool, disk, owner, writable, limit, device_dir, run_id, timeout, check_mode=False):
    """Attach `disk` ({'file', 'uuid', 'capacity_bytes'}) of VM `owner` ({'moid', 'name'}) to a proxy of `pool`.

    Read-only attaches are independent-nonpersistent (nothing written reaches the disk), writable ones
    independent-persistent. Returns an Attachment (not attached in check mode)."""
    datastore = split_datastore_path(disk['file'])[0]
    disk = dict(disk, uuid_hex=hotadd_device.uuid_hex(disk['uuid']))
    mode = WRITE_MODE if writable else READ_ONLY_MODE
    me = this_process()
    prefer_forms = _bios_uuid_forms()
    for attempt in range(RECONFIG_TRIES):
        site = SiteView(client)
        proxies = site.pool(pool)
        holders = write_holders(site.vms, disk['file'])
        if holders:
            raise HotaddError('Refusing to hot-add %s: it is open for writing by %s' % (disk['file'], ', '.join(holders)),
                              fault='DiskInUse', hint='A disk attached in write mode elsewhere must be detached there '
                                                      'first; never detach a disk this collection did not attach.')
        hosts = datastore_hosts(client, datastore, proxies)
        candidates = [{'name': p['name'], 'moid': p['moid'], 'attached': len(p['markers']),
                       'reasons': _reasons(p, disk, owner['moid'], hosts, datastore)} for p in proxies]
        prefer = next((p['moid'] for p in proxies if (p['uuid'] or '').lower() in prefer_forms), None)
        try:
            chosen = choose_proxy(candidates, limit, prefer=prefer)
        except SelectionError as exc:
            raise HotaddError('Cannot hot-add %s of VM %s: %s' % (disk['file'], owner['name'], exc),
                              fault='NoProxy', hint='Add a proxy VM that sees the datastore, or raise proxy_max_disks.')
        proxy = next(p for p in proxies if p['moid'] == chosen['moid'])
        result = Attachment(client, proxy, disk, mode, device_dir)
        if check_mode:
            return result
        controller, unit = _slot(proxy)
        backing = vim.vm.device.VirtualDisk.FlatVer2BackingInfo(fileName=disk['file'], diskMode=mode)
        device = vim.vm.device.VirtualDisk(key=-100, controllerKey=controller, unitNumber=unit, backing=backing,
                                           capacityInKB=disk['capacity_bytes'] // 1024,
                                           capacityInBytes=disk['capacity_bytes'])
        now = int(time.time())
        record = {'file': disk['file'], 'owner': owner['moid'], 'owner_name': owner['name'],
                  'mode': 'rw' if writable else 'ro', 'run': run_id, 'attached': now, 'expires': now + LEASE_SECONDS}
        record.update(me)
        spec = vim.vm.ConfigSpec(
            deviceChange=[vim.vm.device.VirtualDeviceSpec(operation='add', device=device)],
            extraConfig=[vim.option.OptionValue(key=marker_key(disk['uuid_hex']), value=encode_marker(record))])
        if proxy['props']['config.changeVersion']:
            spec.changeVersion = proxy['props']['config.changeVersion']
        action = "Hot-adding %s to proxy VM '%s'" % (disk['file'], proxy['name'])
        try:
            run_task(client, proxy['vm'].ReconfigVM_Task, action, timeout, spec=spec)
        except VsphereError as exc:
            if exc.fault in ('ConcurrentAccess', 'InvalidDeviceSpec') and attempt + 1 < RECONFIG_TRIES:
                continue  # another run reconfigured the proxy in between: read again and choose again
            raise
        result.attached = True
        return result
    raise HotaddError('Hot-adding %s: the proxies kept changing under %d attempts' % (disk['file'], RECONFIG_TRIES),
                      fault='ConcurrentAccess')


def detach(client, proxy_vm, uuid_hex, timeout, proxy_name=None):
    """Remove the disk we attached under marker `uuid_hex` from `proxy_vm`, with its marker, in one ReconfigVM.

    A disk without our marker is never touched. Returns the detached file, or None when there was no marker."""
    for attempt in range(RECONFIG_TRIES):
        props = fetch(client, proxy_vm, ['name', 'config.extraConfig', 'config.hardware.device', 'config.changeVersion'])
        record = markers(props['config.extraConfig']).get(uuid_hex)
        if record is None:
            return None
        devices = [d for d in props['config.hardware.device'] or [] if isinstance(d, vim.vm.device.VirtualDisk)
                   and getattr(d.backing, 'fileName', None) == record.get('file')
                   and getattr(d.backing, 'diskMode', None) in (READ_ONLY_MODE, WRITE_MODE)]
        spec = vim.vm.ConfigSpec(extraConfig=[vim.option.OptionValue(key=marker_key(uuid_hex), value='')],
                                 deviceChange=[vim.vm.device.VirtualDeviceSpec(operation='remove', device=d)
                                               for d in devices])
        if props['config.changeVersion']:
            spec.changeVersion = props['config.changeVersion']
        action = "Detaching %s from proxy VM '%s'" % (record.get('file'), props['name'] or proxy_name)
        try:
            run_task(client, proxy_vm.ReconfigVM_Task, action, timeout, spec=spec)
        except VsphereError as exc:
            if exc.fault == 'ConcurrentAccess' and attempt + 1 < RECONFIG_TRIES:
                continue
            raise
        return record.get('file')
    raise HotaddError('Detaching from proxy VM %s: it kept changing under %d attempts' % (proxy_name, RECONFIG_TRIES),
                      fault='ConcurrentAccess')


def cleanup_leftovers(client, pool, timeout, check_mode=False, now=None):
    """Detach what dead runs left attached to the pool's proxies (our markers only): the actions taken."""
    now = now or int(time.time())
    me = this_process()
    actions = []
    for proxy in SiteView(client).pool(pool):
        for uuid_hex, record in sorted(proxy['markers'].items()):
            if not is_leftover(record, now, me, process_alive):
                continue
            text = "detach %s from proxy VM '%s' (left by run %s, process %s on %s)" % (
                record.get('file'), proxy['name'], record.get('run'), record.get('pid'), record.get('host'))
            if not check_mode:
                detach(client, proxy['vm'], uuid_hex, timeout, proxy['name'])
            actions.append(text)
    return actions


def attachments_on(vm_props):
    """[{'proxy', 'proxy_moid', 'file', 'owner', 'owner_name', 'mode', 'run', 'attached'}] of our markers over
    already-read (vm, props with config.extraConfig) pairs: what replica_info reports."""
    out = []
    for vm, props in vm_props:
        for _hex, record in sorted(markers(props.get('config.extraConfig')).items()):
            out.append({'proxy': props.get('name'), 'proxy_moid': vm._moId, 'file': record.get('file'),
                        'owner': record.get('owner'), 'owner_name': record.get('owner_name'),
                        'mode': record.get('mode'), 'run': record.get('run'), 'attached': record.get('attached')})
    return out


def wait_on_receiver(receiver, device_dir, disk_uuid, timeout):
    """The device path of the disk on the receiver host: here for a local receiver, else through the receiver's
    own command (ssh ... python3), running hotadd_device there."""
    try:
        if receiver in (None, 'local'):
            return hotadd_device.wait_for_device(device_dir, disk_uuid, timeout)
    except hotadd_device.DeviceNotFound as exc:
        raise HotaddError(str(exc), fault='DeviceNotFound', hint=DEVICE_HINT)
    program = inspect.getsource(hotadd_device)  # works from an AnsiballZ zip too
    program += ('\nimport json\ntry:\n    print(json.dumps({"path": wait_for_device(%r, %r, %r)}))\n'
                'except DeviceNotFound as e:\n    print(json.dumps({"error": str(e)}))\n'
                % (device_dir, disk_uuid, float(timeout)))
    data = program.encode('utf-8')
    try:
        proc = subprocess.run(receiver.argv(), input=b'%d\n' % len(data) + data, capture_output=True,
                              timeout=timeout + 120, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise HotaddError('Looking for the hot-added disk on %s failed: %s' % (receiver.describe(), exc),
                          fault='DeviceNotFound')
    try:
        answer = json.loads(proc.stdout.decode('utf-8').strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise HotaddError('Looking for the hot-added disk on %s failed (exit status %s): %s' % (
            receiver.describe(), proc.returncode, proc.stderr.decode('utf-8', 'replace')[-2000:]), fault='DeviceNotFound')
    if answer.get('error'):
        raise HotaddError('%s: %s' % (receiver.describe(), answer['error']), fault='DeviceNotFound', hint=DEVICE_HINT)
    return answer['path']


DEVICE_HINT = ('The disk was attached, but the proxy shows no /dev/disk/by-id entry for it: set disk.EnableUUID=TRUE '
               'on the proxy VM (power cycle it), check device_dir, and that the module or receiver runs on that proxy.')


@contextlib.contextmanager
def attached(client, pool, disk, owner, writable, opts, run_id, check_mode, receiver='local', device_dir=None):
    """Attach for the duration of a `with` block and ALWAYS detach afterwards, also when the block failed.

    Leftovers of dead runs on the pool are detached first. Yields the Attachment with .path set (the block device
    on the host that reads or writes it) and .cleaned (leftover actions)."""
    timeout = opts.get('task_timeout') or 3600
    cleaned = cleanup_leftovers(client, pool, timeout, check_mode=check_mode)
    att = attach(client, pool, disk, owner, writable, opts.get('proxy_max_disks') or 1, device_dir, run_id, timeout,
                 check_mode=check_mode)
    att.cleaned = cleaned
    if check_mode:
        yield att
        return
    failed = True
    try:
        att.path = wait_on_receiver(receiver, device_dir, disk['uuid'], opts.get('device_timeout') or 60)
        yield att
        failed = False
    finally:
        try:
            detach(client, att.proxy['vm'], hotadd_device.uuid_hex(disk['uuid']), timeout, att.proxy['name'])
            att.attached = False
            if receiver in (None, 'local'):
                hotadd_device.wait_for_gone(device_dir, disk['uuid'], 30)
        except VsphereError as exc:
            if not failed:
                raise
            # the copy failed too: keep its error; the next run detaches this disk as a leftover
            att.detach_error = exc.msg


class Ends(object):
    """The hot-added ends of one disk copy: .source / .target device paths (None where not hot-added)."""

    def __init__(self):
        self.source = None
        self.target = None
        self.attachments = {}

    def facts(self):
        """{'source': {...}, 'target': {...}} of what was (or, in check mode, would be) attached, and the
        leftovers detached first."""
        out = {}
        for side, att in sorted(self.attachments.items()):
            out[side] = dict(att.facts(), leftovers_detached=att.cleaned)
            if getattr(att, 'detach_error', None):
                out[side]['detach_error'] = att.detach_error
        return out


def hotadd_state_dir(replica_disk_uuid, mapped_replica_file, state_root):
    """Where the replica disk's committed state lives when its data goes through a hot-added device: beside the
    replica disk when its datastore is mounted here too (so failover and replica_info find it), else in
    `state_root` on the receiver host, named by the replica disk's UUID."""
    if mapped_replica_file:
        return mapped_replica_file + '.replicator'
    if not state_root:
        raise HotaddError('target_transport hotadd needs target_state_dir (a directory on the target proxy for the '
                          'digest map and restore-point journals) when the replica datastore is not mounted there',
                          fault='InvalidArgument', hint='Set target_state_dir, or map the datastore in '
                                                        'target_datastore_paths.')
    return os.path.join(state_root, hotadd_device.uuid_hex(replica_disk_uuid) + '.replicator')


@contextlib.contextmanager
def hotadd_ends(source, target, opts, owner, disk, replica_owner, replica_disk, receiver, check_mode=False):
    """Attach the snapshot disk to a source proxy (read-only) and / or the replica disk to a target proxy
    (writable) as opts ask (transport / target_transport = hotadd), and detach both afterwards, whatever happens.

    owner / replica_owner: {'moid', 'name'} of the VMs the disks belong to; disk / replica_disk: {'file', 'uuid',
    'capacity_bytes'}. Yields an Ends."""
    ends = Ends()
    run_id = opts.get('lock_run_id') or opts.get('cycle_id')
    with contextlib.ExitStack() as stack:
        if opts.get('transport') == 'hotadd':
            att = stack.enter_context(attached(source, opts.get('source_proxy_pool') or [], disk, owner, False, opts,
                                               run_id, check_mode, 'local', opts.get('device_dir')))
            ends.attachments['source'], ends.source = att, att.path
        if opts.get('target_transport') == 'hotadd':
            att = stack.enter_context(attached(target, opts.get('target_proxy_pool') or [], replica_disk, replica_owner,
                                               True, opts, run_id, check_mode, receiver, opts.get('target_device_dir')))
            ends.attachments['target'], ends.target = att, att.path
        yield ends


def disk_by_key(devices, key, entry=None):
    """{'file', 'uuid', 'capacity_bytes'} of the disk with device key `key` in an already-read device list (the
    replica's), falling back to the replica state's entry."""
    entry = entry or {}
    for facts in disk_facts(devices):
        if str(facts['key']) == str(key):
            return {'file': facts['file'], 'uuid': facts['uuid'] or entry.get('uuid'),
                    'capacity_bytes': facts['capacity_bytes']}
    return {'file': entry.get('file'), 'uuid': entry.get('uuid'), 'capacity_bytes': entry.get('capacity')}
