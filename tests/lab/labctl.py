# -*- coding: utf-8 -*-
# Copyright: (c) 2026, replicator.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Control the local vSphere lab: two labd processes (source vCenter, target ESXi host).

Commands: build, up, down, status, write, checksum, inventory, reset-cbt, defer-consolidate, proxy.
The work directory (default <repo>/.lab, or --workdir / LAB_DIR) holds everything the lab writes.
"""

from __future__ import absolute_import, division, print_function

import argparse
import hashlib
import json
import os
import random
import re
import secrets
import shutil
import signal
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

__metaclass__ = type

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
SOURCE_DIR = os.path.join(HERE, 'labd')
SITES = ('source', 'target')
USERNAME = 'administrator@vsphere.local'
GOPATH = '/usr/share/gocode'
START_TIMEOUT = 60.0
STOP_TIMEOUT = 10.0


class LabError(Exception):
    """A lab command failed; the message is for the user."""


def workdir_of(args):
    return os.path.abspath(args.workdir or os.environ.get('LAB_DIR') or os.path.join(REPO, '.lab'))


def build_dir(workdir):
    """Binary and Go cache: $LAB_BUILD_DIR when set (lets throwaway labs share one build), else the work directory."""
    return os.path.abspath(os.environ.get('LAB_BUILD_DIR') or workdir)


def binary_path(workdir):
    return os.path.join(build_dir(workdir), 'bin', 'labd')


def state_path(workdir):
    return os.path.join(workdir, 'lab.json')


def load_state(workdir):
    try:
        with open(state_path(workdir)) as f:
            return json.load(f)
    except (IOError, OSError, ValueError):
        raise LabError('lab is not up (no %s); run "labctl up"' % state_path(workdir))


def build(workdir, force=False):
    """go build labd in GOPATH mode; skipped while the binary is newer than every source file."""
    out = binary_path(workdir)
    sources = [os.path.join(SOURCE_DIR, n) for n in os.listdir(SOURCE_DIR) if n.endswith('.go')]
    if not force and os.path.exists(out) and os.path.getmtime(out) >= max(os.path.getmtime(s) for s in sources):
        return False
    base = build_dir(workdir)
    env = dict(os.environ, GO111MODULE='off', GOPATH=GOPATH, GOFLAGS='', GOCACHE=os.path.join(base, 'cache', 'go-build'),
               GOTMPDIR=os.path.join(base, 'tmp'), TMPDIR=os.path.join(base, 'tmp'))
    os.makedirs(env['GOTMPDIR'], exist_ok=True)
    os.makedirs(os.path.dirname(out), exist_ok=True)
    proc = subprocess.run(['go', 'build', '-o', out, '.'], cwd=SOURCE_DIR, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise LabError('go build failed:\n' + proc.stderr)
    return True


def pid_alive(pid, workdir):
    """True when pid runs labd of this work directory (never signal a stranger)."""
    try:
        with open('/proc/%d/cmdline' % pid, 'rb') as f:
            argv = f.read().split(b'\0')
        with open('/proc/%d/stat' % pid) as f:
            state = f.read().rsplit(')', 1)[1].split()[0]
    except (IOError, OSError):
        return False
    return state != 'Z' and argv[0].endswith(b'labd') and workdir.encode() in b' '.join(argv)


def ssl_context(cafile):
    return ssl.create_default_context(cafile=cafile)


def control(site, path, method='GET', params=None):
    """Call a /lab/ control endpoint of a site from lab.json."""
    url = 'https://127.0.0.1:%d/lab/%s' % (site['port'], path)
    if params:
        url += '?' + urllib.parse.urlencode(params)
    req = urllib.request.Request(url, method=method, data=b'' if method == 'POST' else None)
    with urllib.request.urlopen(req, timeout=60, context=ssl_context(site['cafile'])) as resp:
        return json.load(resp)


def start_site(workdir, name, port, opts, password):
    sitedir = os.path.join(workdir, name)
    tmp = os.path.join(workdir, 'tmp', name)
    for d in (sitedir, tmp):
        os.makedirs(d, exist_ok=True)
    ready = os.path.join(sitedir, 'ready.json')
    if os.path.exists(ready):
        os.remove(ready)
    cmd = [binary_path(workdir), '--site', name, '--workdir', sitedir, '--listen', '127.0.0.1:%d' % port,
           '--username', USERNAME, '--qcda-max-extents', str(opts.qcda_max_extents), '--disk-scale', str(opts.disk_scale)]
    if opts.defer_consolidate:
        cmd.append('--defer-consolidate')
    env = dict(os.environ, LAB_PASSWORD=password, TMPDIR=tmp)
    with open(os.path.join(sitedir, 'labd.log'), 'ab') as log:
        proc = subprocess.Popen(cmd, cwd=sitedir, env=env, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    with open(os.path.join(sitedir, 'labd.pid'), 'w') as f:
        f.write('%d\n' % proc.pid)
    return proc, ready


def wait_ready(proc, ready, name, workdir):
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise LabError('%s site exited with %s, see %s' % (name, proc.returncode, os.path.join(workdir, name, 'labd.log')))
        if os.path.exists(ready):
            with open(ready) as f:
                info = json.load(f)
            site = {'port': info['port'], 'cafile': os.path.join(workdir, name, 'cert.pem')}
            control(site, 'info')  # answers over HTTPS
            return info
        time.sleep(0.05)
    raise LabError('%s site did not start within %ds' % (name, START_TIMEOUT))


def cmd_up(args):
    workdir = workdir_of(args)
    try:
        state = load_state(workdir)
        if any(pid_alive(s['pid'], workdir) for s in state['sites'].values()):
            raise LabError('lab already up in %s (run "labctl down" first)' % workdir)
    except LabError as e:
        if 'already up' in str(e):
            raise
    build(workdir)
    password = secrets.token_urlsafe(18)
    started = {}
    ports = {'source': args.source_port, 'target': args.target_port}
    try:
        for name in SITES:
            for sub in ('datastores', 'ready.json', 'devices'):
                path = os.path.join(workdir, name, sub)
                if os.path.isdir(path):
                    shutil.rmtree(path)
            started[name] = start_site(workdir, name, ports[name], args, password)
        sites = {}
        for name in SITES:
            proc, ready = started[name]
            info = wait_ready(proc, ready, name, workdir)
            site = {'pid': proc.pid, 'host': '127.0.0.1', 'port': info['port'], 'username': USERNAME, 'password': password,
                    'url': 'https://127.0.0.1:%d/sdk' % info['port'], 'cafile': os.path.join(workdir, name, 'cert.pem')}
            lab_info = control(site, 'info')
            site['datastores'] = lab_info['datastores']
            site['datacenter'] = 'SRC-DC' if name == 'source' else 'ha-datacenter'
            site['vms'] = lab_info['vms']
            site['device_dir'] = os.path.join(workdir, name, 'devices')  # hot-added disks, as /dev/disk/by-id
            sites[name] = site
    except BaseException:
        for proc, _ready in started.values():
            stop_pid(proc.pid, workdir)
        raise
    state = {'workdir': workdir, 'sites': sites, 'source': sites['source'], 'target': sites['target']}
    tmp = state_path(workdir) + '.tmp'
    with open(tmp, 'w') as f:
        os.chmod(tmp, 0o600)
        json.dump(state, f, indent=2, sort_keys=True)
    os.replace(tmp, state_path(workdir))
    print(json.dumps({'up': True, 'workdir': workdir, 'source': sites['source']['url'], 'target': sites['target']['url']}))


def stop_pid(pid, workdir):
    if not pid_alive(pid, workdir):
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT
    while time.monotonic() < deadline:
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
        if not pid_alive(pid, workdir):
            return
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)


def cmd_down(args):
    workdir = workdir_of(args)
    stopped = []
    for name in SITES:
        pidfile = os.path.join(workdir, name, 'labd.pid')
        try:
            with open(pidfile) as f:
                pid = int(f.read().strip())
        except (IOError, OSError, ValueError):
            continue
        stop_pid(pid, workdir)
        stopped.append(pid)
        for n in ('labd.pid', 'ready.json'):
            path = os.path.join(workdir, name, n)
            if os.path.exists(path):
                os.remove(path)
    if os.path.exists(state_path(workdir)):
        os.remove(state_path(workdir))
    print(json.dumps({'down': True, 'stopped': stopped}))


def cmd_status(args):
    workdir = workdir_of(args)
    out = {'workdir': workdir, 'up': False, 'sites': {}}
    try:
        state = load_state(workdir)
    except LabError:
        print(json.dumps(out))
        return
    for name, site in state['sites'].items():
        out['sites'][name] = {'pid': site['pid'], 'running': pid_alive(site['pid'], workdir), 'url': site['url']}
    out['up'] = all(s['running'] for s in out['sites'].values())
    print(json.dumps(out, indent=2))


def vm_info(state, site, vm):
    try:
        return control(state['sites'][site], 'vm', params={'name': vm})
    except urllib.error.HTTPError as e:
        raise LabError('%s site: no VM %s (%s)' % (site, vm, e.code))


def pick_disk(info, disk):
    """--disk is an index (0, 1, ...) or a device key (2000, ...)."""
    for i, d in enumerate(info['disks']):
        if disk in (i, d['key']):
            return d
    raise LabError('VM %s has no disk %s' % (info['name'], disk))


def merge_ranges(ranges):
    out = []
    for off, length in sorted(ranges):
        if out and off <= out[-1][0] + out[-1][1]:
            out[-1][1] = max(out[-1][1], off + length - out[-1][0])
        else:
            out.append([off, length])
    return out


def cmd_write(args):
    state = load_state(workdir_of(args))
    info = vm_info(state, args.site, args.vm)
    disk = pick_disk(info, args.disk)
    capacity = disk['capacity']
    rng = random.Random(args.seed)
    if args.percent is not None:
        goal, ranges, total = capacity * args.percent // 100, [], 0
        while total < goal:
            length = min(4096 * rng.randint(1, 32), goal - total)
            off = 4096 * rng.randrange(0, (capacity - length) // 4096 + 1)
            ranges.append((off, length))
            total += length
    elif args.offset is not None and args.length is not None:
        if args.offset < 0 or args.length <= 0 or args.offset + args.length > capacity:
            raise LabError('range %d+%d outside the disk (capacity %d)' % (args.offset, args.length, capacity))
        ranges = [(args.offset, args.length)]
    else:
        raise LabError('give --percent P or --offset O --length L')
    with open(disk['data'], 'r+b') as f:
        for off, length in ranges:
            f.seek(off)
            f.write(bytes(length) if args.zeros else rng.randbytes(length))
        f.flush()
        os.fsync(f.fileno())
    merged = merge_ranges(ranges)
    print(json.dumps({'vm': args.vm, 'disk_key': disk['key'], 'data': disk['data'], 'zeros': args.zeros,
                      'ranges': merged, 'bytes': sum(r[1] for r in merged)}))


def sha256_file(path, capacity):
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        left = capacity
        while left > 0:
            chunk = f.read(min(left, 1 << 20))
            if not chunk:
                h.update(bytes(left))  # a sparse tail past EOF reads as zeros
                break
            h.update(chunk)
            left -= len(chunk)
    return h.hexdigest()


def cmd_checksum(args):
    state = load_state(workdir_of(args))
    info = vm_info(state, args.site, args.vm)
    disks = info['disks']
    if args.snapshot:
        snaps = [s for s in info['snapshots'] or [] if s['name'] == args.snapshot]
        if len(snaps) != 1:
            raise LabError('VM %s has %d snapshots named %s' % (args.vm, len(snaps), args.snapshot))
        disks = snaps[0]['disks']
    if args.disk is not None:
        disks = [pick_disk({'name': args.vm, 'disks': disks}, args.disk)]
    out = [{'key': d['key'], 'capacity': d['capacity'], 'data': d['data'], 'sha256': sha256_file(d['data'], d['capacity'])}
           for d in disks]
    print(json.dumps({'vm': args.vm, 'site': args.site, 'snapshot': args.snapshot, 'disks': out}))


def cmd_compare(args):
    """Each source VM's disks (live data, or a snapshot's) against its replica's disks on the target, by sha256.
    Exits 1 when any pair differs, so `make demo` can prove the bytes."""
    state = load_state(workdir_of(args))
    rows, same = [], True
    for vm in args.vms or state['sites']['source']['vms']:
        info = vm_info(state, 'source', vm)
        disks = info['disks']
        if args.snapshot:
            snaps = [s for s in info['snapshots'] or [] if s['name'] == args.snapshot]
            if len(snaps) != 1:
                raise LabError('VM %s has %d snapshots named %s' % (vm, len(snaps), args.snapshot))
            disks = snaps[0]['disks']
        replica_name = args.replica_name.replace('{name}', vm)
        replica = vm_info(state, 'target', replica_name)['disks']
        if len(replica) != len(disks):
            raise LabError('%s has %d disks, its replica %s has %d' % (vm, len(disks), replica_name, len(replica)))
        for src, dst in zip(disks, replica):
            a, b = sha256_file(src['data'], src['capacity']), sha256_file(dst['data'], dst['capacity'])
            same = same and a == b
            rows.append({'vm': vm, 'replica': replica_name, 'disk': src['key'], 'source_sha256': a,
                         'replica_sha256': b, 'equal': a == b})
    print(json.dumps({'equal': same, 'disks': rows}, indent=1))
    return 0 if same else 1


def cmd_control(args):
    state = load_state(workdir_of(args))
    if args.command == 'reset-cbt':
        out = control(state['sites'][args.site], 'reset-cbt', 'POST', {'vm': args.vm})
    else:
        out = control(state['sites'][args.site], 'defer-consolidate', 'POST', {'vm': args.vm, 'enabled': '0' if args.off else '1'})
    print(json.dumps(out))


def cmd_proxy(args):
    """Create a hot-add proxy VM on a site (tests/lab/README.md, "Hot-add proxies"): a powered-on VM with a
    paravirtual SCSI controller, no disks, extraConfig labd.proxy=TRUE and disk.EnableUUID=TRUE (unless
    --no-enable-uuid). Disks attached to it show up under the site's device_dir. Needs pyVmomi."""
    from pyVim.connect import Disconnect, SmartConnect  # only this command talks SOAP
    from pyVim.task import WaitForTask
    from pyVmomi import vim
    state = load_state(workdir_of(args))
    site = state['sites'][args.site]
    si = SmartConnect(host=site['host'], port=site['port'], user=site['username'], pwd=site['password'],
                      sslContext=ssl_context(site['cafile']))
    try:
        content = si.RetrieveContent()
        dc = [e for e in content.rootFolder.childEntity if isinstance(e, vim.Datacenter)][0]
        view = content.viewManager.CreateContainerView(content.rootFolder, [vim.HostSystem], True)
        try:
            hosts = sorted(view.view, key=lambda h: h.name)
        finally:
            view.DestroyView()
        host = [h for h in hosts if h.name == args.host][0] if args.host else hosts[0]
        controller = vim.vm.device.VirtualDeviceSpec(operation='add', device=vim.vm.device.ParaVirtualSCSIController(
            key=1000, busNumber=0, sharedBus='noSharing'))
        extra = [vim.option.OptionValue(key='labd.proxy', value='TRUE')]
        if not args.no_enable_uuid:
            extra.append(vim.option.OptionValue(key='disk.EnableUUID', value='TRUE'))
        spec = vim.vm.ConfigSpec(name=args.name, guestId='otherLinux64Guest', numCPUs=1, memoryMB=512,
                                 deviceChange=[controller], extraConfig=extra,
                                 files=vim.vm.FileInfo(vmPathName='[%s]' % sorted(site['datastores'])[0]))
        task = dc.vmFolder.CreateVM_Task(config=spec, pool=host.parent.resourcePool, host=host)
        WaitForTask(task)
        vm = task.info.result
        WaitForTask(vm.PowerOnVM_Task())
        print(json.dumps({'name': args.name, 'moid': vm._moId, 'site': args.site, 'host': host.name,
                          'device_dir': site.get('device_dir')}))
    finally:
        Disconnect(si)


def cmd_serve_nbd(args):
    """Serve a lab disk (descriptor path) read-only over NBD on a unix socket, in the background: what
    nbdkit-vddk or qemu-nbd serve on a real host. Lab deltas are raw full images (see README), so the descriptor's
    extent file is served as it is; qemu-nbd would read a real vmfsSparse chain instead."""
    extent = None
    with open(args.descriptor) as f:
        for line in f:
            match = re.match(r'^RW\s+\d+\s+\w+\s+"([^"]+)"', line.strip())
            if match:
                extent = os.path.join(os.path.dirname(os.path.abspath(args.descriptor)), match.group(1))
                break
    if extent is None or not os.path.exists(extent):
        raise LabError('%s: no extent file found' % args.descriptor)
    proc = subprocess.run(['nbdkit', '--unix', args.socket, '--pidfile', args.pidfile, '--readonly', 'file', extent],
                          capture_output=True, text=True, timeout=60, check=False)
    if proc.returncode != 0:
        raise LabError('nbdkit failed: %s' % proc.stderr.strip())
    print(json.dumps({'descriptor': args.descriptor, 'extent': extent, 'socket': args.socket,
                      'uri': 'nbd+unix:///?socket=%s' % args.socket}))


def cmd_inventory(args):
    """An inventory for the lab: `replicator_lab` (localhost, the data mover), `replicated_vms` (one host per source
    VM, modules delegated to localhost), and group_vars/all.yml with both sites and the replicate role's settings."""
    state = load_state(workdir_of(args))
    os.makedirs(os.path.join(args.output, 'group_vars'), exist_ok=True)
    local = {'ansible_connection': 'local', 'ansible_python_interpreter': sys.executable}
    vms = state['sites']['source']['vms']
    hosts = {'all': {'children': {'replicator_lab': {'hosts': {'localhost': local}},
                                  'replicated_vms': {'hosts': dict((vm, dict(local)) for vm in vms)}}}}
    paths, conn = {}, {}
    for name, site in state['sites'].items():
        paths.update(site['datastores'])
        conn[name] = {'hostname': site['host'], 'port': site['port'], 'username': site['username'], 'password': site['password'],
                      'validate_certs': True, 'ca_path': site['cafile'], 'datacenter': site['datacenter'],
                      'datastores': sorted(site['datastores'])}
    connection = ('hostname', 'port', 'username', 'password', 'validate_certs', 'ca_path')
    group = {
        'lab_source': conn['source'], 'lab_target': conn['target'], 'lab_datastore_paths': paths,
        'lab_source_vms': vms, 'lab_target_host': 'dr-esx01',
        'replicate_source': dict((k, conn['source'][k]) for k in connection),
        'replicate_target': dict((k, conn['target'][k]) for k in connection),
        'replicate_datacenter': conn['source']['datacenter'],
        'replicate_target_host': 'dr-esx01', 'replicate_target_datastore': 'dr-ds1',
        'replicate_network_map': {'VM Network': 'DR Network'},
        'replicate_source_datastore_paths': state['sites']['source']['datastores'],
        'replicate_target_datastore_paths': state['sites']['target']['datastores'],
        'replicate_report_dir': os.path.join(os.path.dirname(os.path.abspath(args.output)), 'reports'),
    }
    # JSON is valid YAML: no YAML library needed
    for rel, data in (('hosts.yml', hosts), (os.path.join('group_vars', 'all.yml'), group)):
        path = os.path.join(args.output, rel)
        with open(path, 'w') as f:
            os.chmod(path, 0o600)
            f.write('---\n' + json.dumps(data, indent=2, sort_keys=True) + '\n')
    print(json.dumps({'inventory': os.path.join(args.output, 'hosts.yml')}))


def parser():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--workdir', help='lab work directory (default: $LAB_DIR or <repo>/.lab)')
    sub = p.add_subparsers(dest='command', required=True)
    b = sub.add_parser('build', help='build labd (skipped when up to date)')
    b.add_argument('--force', action='store_true')
    up = sub.add_parser('up', help='start both sites and write lab.json')
    up.add_argument('--source-port', type=int, default=0)
    up.add_argument('--target-port', type=int, default=0)
    up.add_argument('--disk-scale', type=int, default=int(os.environ.get('LAB_DISK_SCALE', '100')),
                    help='percent of the default source disk sizes')
    up.add_argument('--qcda-max-extents', type=int, default=int(os.environ.get('LAB_QCDA_MAX_EXTENTS', '64')))
    up.add_argument('--defer-consolidate', action='store_true', default=os.environ.get('LAB_DEFER_CONSOLIDATE') == '1')
    sub.add_parser('down', help='stop both sites')
    sub.add_parser('status', help='show whether the sites run')
    w = sub.add_parser('write', help="simulate guest writes into a VM's live disk")
    w.add_argument('vm')
    w.add_argument('--disk', type=int, default=0, help='disk index or device key')
    w.add_argument('--percent', type=int)
    w.add_argument('--offset', type=int)
    w.add_argument('--length', type=int)
    w.add_argument('--zeros', action='store_true')
    w.add_argument('--seed', type=int, default=1)
    w.add_argument('--site', choices=SITES, default='source')
    c = sub.add_parser('checksum', help="sha256 of a disk's data (live or a snapshot's)")
    c.add_argument('vm')
    c.add_argument('--disk', type=int)
    c.add_argument('--snapshot')
    c.add_argument('--site', choices=SITES, default='source')
    cmp_ = sub.add_parser('compare', help="sha256 of every source disk against its replica's disk (exit 1 if any differ)")
    cmp_.add_argument('vms', nargs='*', help='source VMs (default: all)')
    cmp_.add_argument('--replica-name', default='{name}_replica', help='replica name pattern ({name} = source VM)')
    cmp_.add_argument('--snapshot', help='compare a source snapshot instead of the live disks')
    px = sub.add_parser('proxy', help='create a hot-add proxy VM (disks attached to it appear under device_dir)')
    px.add_argument('name')
    px.add_argument('--site', choices=SITES, default='source')
    px.add_argument('--host', help='host to place it on (default: the first by name)')
    px.add_argument('--no-enable-uuid', action='store_true', help='leave disk.EnableUUID unset (no by-id names)')
    n = sub.add_parser('serve-nbd', help='serve a disk read-only over NBD on a unix socket (nbdkit, background)')
    n.add_argument('descriptor', help='VMDK descriptor path on a lab datastore')
    n.add_argument('--socket', required=True)
    n.add_argument('--pidfile', required=True)
    i = sub.add_parser('inventory', help='write an Ansible inventory for the lab')
    i.add_argument('--output', required=True)
    for name in ('reset-cbt', 'defer-consolidate'):
        r = sub.add_parser(name)
        r.add_argument('vm')
        r.add_argument('--site', choices=SITES, default='source')
        if name == 'defer-consolidate':
            r.add_argument('--off', action='store_true')
    return p


COMMANDS = {'build': None, 'up': cmd_up, 'down': cmd_down, 'status': cmd_status, 'write': cmd_write, 'checksum': cmd_checksum,
            'compare': cmd_compare, 'inventory': cmd_inventory, 'serve-nbd': cmd_serve_nbd, 'reset-cbt': cmd_control, 'defer-consolidate': cmd_control,
            'proxy': cmd_proxy}


def main(argv=None):
    args = parser().parse_args(argv)
    try:
        if args.command == 'build':
            built = build(workdir_of(args), args.force)
            print(json.dumps({'built': built, 'binary': binary_path(workdir_of(args))}))
        else:
            return COMMANDS[args.command](args) or 0
    except LabError as e:
        print('labctl: %s' % e, file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
