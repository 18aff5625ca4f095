# -*- coding: utf-8 -*-
# Copyright: (c) 2026, replicator.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Scale of playbooks/replicate.yml: N lab VMs x 2 disks replicated in one run with forks, for several N.

    PYTHONPATH=<dir above ansible_collections> .venv/bin/python tests/bench/bench_scale.py [--sizes 5,10,25,50]
        [--forks 10] [--disks-mib 8,4] [--seed-percent 35] [--change-percent 5]

For every N: a fresh lab (labctl up in a temp dir), N powered-on VMs with two disks each (created through the
lab's vSphere API, guest data written with labctl write), an inventory whose `replicated_vms` are exactly these
VMs, then `ansible-playbook playbooks/replicate.yml -f FORKS` twice: a full cycle, then (after guest writes into
every VM's first disk) an incremental one. Per run: wall time, the per-VM cycle time from the run report, SOAP
calls per VM from the lab's counters (both sites, per method), and the peak memory of the process tree sampled
from /proc: the controller (ansible-playbook and its fork workers) and the proxy side (the module processes,
AnsiballZ_* and their children; the proxy is localhost here, so they run in the same tree). Nothing is asserted;
see tests/bench/README.md and docs/performance.md ("Scale").
"""

from __future__ import absolute_import, division, print_function

import argparse
import contextlib
import io
import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
LABCTL = os.path.join(REPO, 'tests', 'lab', 'labctl.py')
PAGE = os.sysconf('SC_PAGE_SIZE')
MIB = 1024 * 1024
PLAY_TIMEOUT = 3600
SAMPLE_SECONDS = 0.25


def loadavg():
    with open('/proc/loadavg') as f:
        return ' '.join(f.read().split()[:3])


def acroot():
    if REPO.endswith(os.path.join('ansible_collections', 'replicator', 'vsphere')):
        return os.path.dirname(os.path.dirname(os.path.dirname(REPO)))
    return os.path.join(REPO, '.build', 'acroot')


class Lab(object):
    """A throwaway lab in `workdir` (started by up(), stopped by down())."""

    def __init__(self, workdir):
        self.workdir = workdir
        self.env = dict(os.environ)
        self.env.setdefault('LAB_BUILD_DIR', os.path.join(REPO, '.lab'))     # share the Go build
        self.state = None
        self.si = None

    def labctl(self, *args):
        proc = subprocess.run([sys.executable, LABCTL, '--workdir', self.workdir] + [str(a) for a in args],
                              env=self.env, capture_output=True, text=True, timeout=300, check=False)
        if proc.returncode != 0:
            raise RuntimeError('labctl %s failed: %s' % (' '.join(map(str, args)), proc.stderr))
        return json.loads(proc.stdout)

    def up(self):
        self.labctl('up')
        with open(os.path.join(self.workdir, 'lab.json')) as f:
            self.state = json.load(f)

    def down(self):
        if self.si is not None:
            from pyVim.connect import Disconnect
            try:
                Disconnect(self.si)
            except Exception:  # pylint: disable=broad-except
                pass
        self.labctl('down')

    def control(self, site, path, method='GET'):
        s = self.state['sites'][site]
        import urllib.request
        req = urllib.request.Request('https://127.0.0.1:%d/lab/%s' % (s['port'], path), method=method,
                                     data=b'' if method == 'POST' else None)
        with urllib.request.urlopen(req, timeout=60, context=ssl.create_default_context(cafile=s['cafile'])) as r:
            return json.load(r)

    def counters(self):
        return dict((site, self.control(site, 'counters')) for site in ('source', 'target'))

    def reset_counters(self):
        for site in ('source', 'target'):
            self.control(site, 'counters/reset', 'POST')

    def write(self, *args):
        """labctl write in this process (no interpreter start per disk)."""
        sys.path.insert(0, os.path.dirname(LABCTL))
        try:
            import labctl       # pylint: disable=import-error
        finally:
            sys.path.pop(0)
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            rc = labctl.main(['--workdir', self.workdir, 'write'] + [str(a) for a in args])
        if rc:
            raise RuntimeError('labctl write %s failed' % ' '.join(map(str, args)))

    def create_vms(self, names, disks_mib, seed_percent):
        """Powered-on VMs with empty thin disks on the source site, then guest data in each disk."""
        from pyVim.connect import SmartConnect
        from pyVim.task import WaitForTask
        from pyVmomi import vim
        s = self.state['sites']['source']
        self.si = SmartConnect(host=s['host'], port=s['port'], user=s['username'], pwd=s['password'],
                               sslContext=ssl.create_default_context(cafile=s['cafile']))
        content = self.si.RetrieveContent()
        dc = [e for e in content.rootFolder.childEntity if isinstance(e, vim.Datacenter)][0]
        view = content.viewManager.CreateContainerView(content.rootFolder, [vim.HostSystem], True)
        try:
            hosts = sorted(view.view, key=lambda h: h.name)
        finally:
            view.DestroyView()
        add = vim.vm.device.VirtualDeviceSpec.Operation.add
        for i, name in enumerate(names):
            host = hosts[i % len(hosts)]
            changes = [vim.vm.device.VirtualDeviceSpec(operation=add, device=vim.vm.device.ParaVirtualSCSIController(
                key=1000, busNumber=0, sharedBus='noSharing'))]
            for unit, mib in enumerate(disks_mib):
                backing = vim.vm.device.VirtualDisk.FlatVer2BackingInfo(diskMode='persistent', thinProvisioned=True)
                disk = vim.vm.device.VirtualDisk(key=-(unit + 1), controllerKey=1000, unitNumber=unit, backing=backing,
                                                 capacityInKB=mib * 1024, capacityInBytes=mib * MIB)
                changes.append(vim.vm.device.VirtualDeviceSpec(operation=add, device=disk, fileOperation='create'))
            spec = vim.vm.ConfigSpec(name=name, guestId='otherLinux64Guest', numCPUs=1, memoryMB=256,
                                     deviceChange=changes,
                                     files=vim.vm.FileInfo(vmPathName='[%s]' % sorted(s['datastores'])[0]))
            task = dc.vmFolder.CreateVM_Task(config=spec, pool=host.parent.resourcePool, host=host)
            WaitForTask(task)
            for unit in range(len(disks_mib)):
                self.write(name, '--disk', unit, '--percent', seed_percent, '--seed', i * 10 + unit + 1)
            WaitForTask(task.info.result.PowerOnVM_Task())


def write_inventory(lab, out, names):
    lab.labctl('inventory', '--output', os.path.join(out, 'inventory'))
    hosts_file = os.path.join(out, 'inventory', 'hosts.yml')
    with open(hosts_file) as f:
        hosts = json.loads(f.read().split('\n', 1)[1])
    local = {'ansible_connection': 'local', 'ansible_python_interpreter': sys.executable}
    hosts['all']['children']['replicated_vms']['hosts'] = dict((name, local) for name in names)
    with open(hosts_file, 'w') as f:
        f.write('---\n' + json.dumps(hosts))
    return os.path.join(out, 'inventory')


# ---- memory of the process tree ----------------------------------------------------------------------------------

def _children_map():
    kids = {}
    for entry in os.listdir('/proc'):
        if not entry.isdigit():
            continue
        try:
            with open('/proc/%s/stat' % entry) as f:
                ppid = int(f.read().rsplit(')', 1)[1].split()[1])
        except (IOError, OSError, ValueError, IndexError):
            continue
        kids.setdefault(ppid, []).append(int(entry))
    return kids


def _cmdline(pid):
    try:
        with open('/proc/%d/cmdline' % pid, 'rb') as f:
            return f.read()
    except (IOError, OSError):
        return b''


def _pss_rss(pid):
    """(PSS, RSS) in bytes from smaps_rollup: PSS shares pages among the processes mapping them, so forked
    workers that share their parent's pages are not counted twice."""
    pss = rss = 0
    try:
        with open('/proc/%d/smaps_rollup' % pid) as f:
            for line in f:
                if line.startswith('Pss:'):
                    pss = int(line.split()[1]) * 1024
                elif line.startswith('Rss:'):
                    rss = int(line.split()[1]) * 1024
    except (IOError, OSError, ValueError):
        pass
    return pss, rss


class TreeSampler(threading.Thread):
    """Samples the tree under `root` every SAMPLE_SECONDS: peak PSS sums and the largest single RSS, split into
    controller (ansible-playbook + fork workers) and proxy (module processes: a process whose command line names
    an AnsiballZ_ file, and everything below it)."""

    def __init__(self, root):
        threading.Thread.__init__(self, name='tree-sampler')
        self.daemon = True
        self.root = root
        self.stop = threading.Event()
        self.peak = {'controller_pss': 0, 'controller_rss_max': 0, 'proxy_pss': 0, 'proxy_rss_max': 0,
                     'processes': 0, 'modules': 0}
        self.samples = 0

    def sample(self):
        kids = _children_map()
        todo = [(self.root, False)]
        ctl = prox = 0
        nproc = nmod = 0
        seen = 0
        while todo and seen < 10000:
            pid, module = todo.pop()
            seen += 1
            if not module and b'AnsiballZ_' in _cmdline(pid):
                module = True
                nmod += 1
            pss, rss = _pss_rss(pid)
            nproc += 1
            if module:
                prox += pss
                self.peak['proxy_rss_max'] = max(self.peak['proxy_rss_max'], rss)
            else:
                ctl += pss
                self.peak['controller_rss_max'] = max(self.peak['controller_rss_max'], rss)
            todo.extend((k, module) for k in kids.get(pid, ()))
        p = self.peak
        p['controller_pss'] = max(p['controller_pss'], ctl)
        p['proxy_pss'] = max(p['proxy_pss'], prox)
        p['processes'] = max(p['processes'], nproc)
        p['modules'] = max(p['modules'], nmod)
        self.samples += 1

    def run(self):
        deadline = time.monotonic() + PLAY_TIMEOUT
        while not self.stop.is_set() and time.monotonic() < deadline:
            self.sample()
            self.stop.wait(SAMPLE_SECONDS)


def play(inventory, home, forks, tag):
    env = dict(os.environ, ANSIBLE_NOCOLOR='1', ANSIBLE_HOME=os.path.join(home, 'ansible'),
               ANSIBLE_LOCAL_TEMP=os.path.join(home, 'tmp'), ANSIBLE_COLLECTIONS_PATH=acroot(),
               PYTHONPATH=acroot())
    cmd = [os.path.join(os.path.dirname(sys.executable), 'ansible-playbook'), '-i', inventory, '-f', str(forks),
           os.path.join(REPO, 'playbooks', 'replicate.yml')]
    log = os.path.join(home, 'play-%s.log' % tag)
    report_file = os.path.join(home, 'reports', 'report.json')
    if os.path.exists(report_file):
        os.unlink(report_file)      # never read the previous run's report
    t0 = time.monotonic()
    with open(log, 'w') as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        sampler = TreeSampler(proc.pid)
        sampler.start()
        try:
            rc = proc.wait(PLAY_TIMEOUT)
        except BaseException:
            proc.terminate()
            proc.wait(30)
            raise
        finally:
            sampler.stop.set()
            sampler.join(10)
    wall = time.monotonic() - t0
    report = {}
    if os.path.exists(report_file):
        with open(report_file) as f:
            report = json.load(f)
    return {'rc': rc, 'wall': wall, 'report': report, 'memory': sampler.peak, 'samples': sampler.samples, 'log': log}


def _sum(counters):
    return sum(sum(c.values()) for c in counters.values())


def run_size(n, a, out_rows):
    work = tempfile.mkdtemp(prefix='rvscale', dir=a.dir)
    lab = Lab(os.path.join(work, 'lab'))
    names = ['scale%03d' % i for i in range(1, n + 1)]
    try:
        t0 = time.monotonic()
        lab.up()
        lab.create_vms(names, a.disks_mib, a.seed_percent)
        inventory = write_inventory(lab, work, names)
        setup = time.monotonic() - t0
        for tag in ('full', 'incremental'):
            if tag == 'incremental':
                for i, name in enumerate(names):
                    lab.write(name, '--disk', 0, '--percent', a.change_percent, '--seed', 1000 + i)
            load = loadavg()
            lab.reset_counters()
            res = play(inventory, work, a.forks, tag)
            counters = lab.counters()
            vms = res['report'].get('vms', [])
            ok = [v for v in vms if v.get('status') == 'success']
            per_vm = [v['finished'] - v['started'] for v in ok if v.get('finished') and v.get('started')]
            sent = sum(d.get('bytes_sent', 0) for v in ok for d in v.get('disks', []))
            plans = sorted(set(d.get('plan') for v in ok for d in v.get('disks', [])))
            out_rows.append({'n': n, 'cycle': tag, 'forks': a.forks, 'rc': res['rc'], 'ok': len(ok), 'wall': res['wall'],
                             'vm_mean': sum(per_vm) / len(per_vm) if per_vm else 0.0,
                             'vm_max': max(per_vm) if per_vm else 0.0, 'sent': sent, 'plans': plans,
                             'soap': counters, 'soap_total': _sum(counters), 'memory': res['memory'],
                             'samples': res['samples'], 'load': load, 'setup': setup})
            print('N=%d %s: rc=%d, %d/%d VMs ok, %.1f s, SOAP %d (%.1f per VM), load %s' % (
                n, tag, res['rc'], len(ok), n, res['wall'], _sum(counters), _sum(counters) / float(n), load),
                flush=True)
            if a.json:
                with open(a.json, 'w') as f:
                    json.dump(out_rows, f, indent=1)
            if res['rc'] != 0 and a.keep_logs:
                print('  log: %s' % res['log'])
    finally:
        try:
            lab.down()
        finally:
            if not a.keep_logs:
                shutil.rmtree(work, ignore_errors=True)


def _top_methods(counters, n, k=8):
    merged = {}
    for site, c in counters.items():
        for method, count in c.items():
            merged['%s %s' % (site, method)] = count
    return ', '.join('%s %.1f' % (m, c / float(n)) for m, c in sorted(merged.items(), key=lambda x: -x[1])[:k])


def print_tables(rows, a):
    rows = sorted(rows, key=lambda r: (r['n'], r['cycle']))
    print()
    print('disks per VM: %s MiB (%d%% written), incremental: %d%% of disk 0 rewritten; forks=%d, cpus=%d' % (
        '+'.join(str(m) for m in a.disks_mib), a.seed_percent, a.change_percent, a.forks, os.cpu_count()))
    print()
    print('| N | cycle | VMs ok | wall s | s per VM (wall/N) | VM cycle mean / max s | SOAP calls per VM (source + target) '
          '| controller peak PSS MiB | largest controller process RSS MiB | proxy peak PSS MiB (modules at once) '
          '| largest module RSS MiB | MiB sent | loadavg at start |')
    print('|---|---|---|---|---|---|---|---|---|---|---|---|---|')
    for r in rows:
        m = r['memory']
        src = sum(r['soap'].get('source', {}).values())
        tgt = sum(r['soap'].get('target', {}).values())
        print('| %d | %s | %d/%d | %.1f | %.2f | %.1f / %.1f | %.1f (%.1f + %.1f) | %.0f | %.0f | %.0f (%d) | %.0f | %.1f | %s |' % (
            r['n'], r['cycle'], r['ok'], r['n'], r['wall'], r['wall'] / r['n'], r['vm_mean'], r['vm_max'],
            r['soap_total'] / float(r['n']), src / float(r['n']), tgt / float(r['n']),
            m['controller_pss'] / MIB, m['controller_rss_max'] / MIB, m['proxy_pss'] / MIB, m['modules'],
            m['proxy_rss_max'] / MIB, r['sent'] / float(MIB), r['load']))
    print()
    for cycle in ('full', 'incremental'):
        sel = [r for r in rows if r['cycle'] == cycle]
        if len(sel) < 2:
            continue
        lo, hi = sel[0], sel[-1]
        f = hi['n'] / float(lo['n'])
        print('growth %s, N %d -> %d (x%.0f): wall x%.2f, SOAP total x%.2f (per VM x%.2f), controller PSS x%.2f, '
              'proxy PSS x%.2f' % (cycle, lo['n'], hi['n'], f, hi['wall'] / lo['wall'],
                                   hi['soap_total'] / float(lo['soap_total'] or 1),
                                   (hi['soap_total'] / hi['n']) / (lo['soap_total'] / float(lo['n']) or 1),
                                   hi['memory']['controller_pss'] / float(lo['memory']['controller_pss'] or 1),
                                   hi['memory']['proxy_pss'] / float(lo['memory']['proxy_pss'] or 1)))
    print()
    for r in rows:
        logins = sum(c.get('Login', 0) for c in r['soap'].values())
        print('SOAP per VM, N=%d %s: %d sessions (Login) per VM, %.1f calls per session; top: %s' % (
            r['n'], r['cycle'], logins // r['n'], r['soap_total'] / float(logins or 1), _top_methods(r['soap'], r['n'])))


def _interrupted(_sig, _frame):
    raise KeyboardInterrupt()     # SIGTERM: stop the playbook and the lab like Ctrl-C does


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--sizes', default='5,10,25,50', help='comma separated VM counts')
    p.add_argument('--forks', type=int, default=10)
    p.add_argument('--disks-mib', default='8,4', help='the two disk sizes (MiB)')
    p.add_argument('--seed-percent', type=int, default=35, help='share of each disk written before the full cycle')
    p.add_argument('--change-percent', type=int, default=5, help='share of disk 0 rewritten before the incremental')
    p.add_argument('--dir', default=None, help='where the temp lab goes (default: $TMPDIR)')
    p.add_argument('--keep-logs', action='store_true', help='keep the work directory (playbook logs, reports)')
    p.add_argument('--json', help='also write the rows as JSON to this file')
    a = p.parse_args()
    a.disks_mib = [int(x) for x in a.disks_mib.split(',')]
    sizes = [int(x) for x in a.sizes.split(',')]
    rows = []
    signal.signal(signal.SIGTERM, _interrupted)
    try:
        for n in sizes:
            run_size(n, a, rows)
    finally:
        if rows:
            print_tables(rows, a)
    return 0 if all(r['rc'] == 0 for r in rows) else 1


if __name__ == '__main__':
    sys.exit(main())
