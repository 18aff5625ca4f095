#!/usr/bin/env bash
# The lab demo (`make demo`): start the lab, replicate every source VM twice (full, then incremental after
# simulated guest writes), prove the replicas hold the source bytes, print the run report, stop the lab.
set -euo pipefail
: "${PY:?PY must name the project venv python}"
LAB_DIR=${LAB_DIR:?LAB_DIR must name the lab work directory}
LABCTL=("$PY" tests/lab/labctl.py --workdir "$LAB_DIR")
INVENTORY=$LAB_DIR/inventory
PLAYBOOK=("$(dirname "$PY")/ansible-playbook" -i "$INVENTORY")

step() { printf '\n=== %s\n' "$*"; }
cleanup() { "${LABCTL[@]}" down >/dev/null 2>&1 || true; }
trap cleanup EXIT

step "Starting the lab (source vCenter + DR ESXi host)"
"${LABCTL[@]}" down >/dev/null 2>&1 || true
"${LABCTL[@]}" up
rm -rf "$INVENTORY"
"${LABCTL[@]}" inventory --output "$INVENTORY" >/dev/null
REPORTS=$LAB_DIR/reports
rm -rf "$REPORTS"

step "The source site"
"${PLAYBOOK[@]}" playbooks/demo.yml

step "Cycle 1: full replication of every VM"
"${PLAYBOOK[@]}" playbooks/replicate.yml
cp "$REPORTS/report.md" "$REPORTS/report-cycle1.md"
cp "$REPORTS/report.json" "$REPORTS/report-cycle1.json"
"${LABCTL[@]}" checksum app01 > "$REPORTS/app01-cycle1.json"

step "Guest writes: 2% of app01's second disk, 20 KB of db01, zeros over data on web01"
"${LABCTL[@]}" write app01 --disk 1 --percent 2 --seed 11 | "$PY" -c 'import json,sys; r=json.load(sys.stdin); print("app01 disk 1: %d bytes in %d ranges" % (sum(n for _o, n in r["ranges"]), len(r["ranges"])))'
"${LABCTL[@]}" write db01 --disk 0 --offset 1048000 --length 20000 --seed 12 >/dev/null
# zeros over data: the first allocated 256 KiB of web01's disk
web01_data=$("${LABCTL[@]}" checksum web01 --disk 0 | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["disks"][0]["data"])')
web01_offset=$("$PY" -c 'import os,sys; fd=os.open(sys.argv[1], os.O_RDONLY); print(os.lseek(fd, 0, os.SEEK_DATA) // 65536 * 65536)' "$web01_data")
"${LABCTL[@]}" write web01 --disk 0 --offset "$web01_offset" --length 262144 --zeros >/dev/null

step "Cycle 2: incremental replication (only changed blocks travel)"
"${PLAYBOOK[@]}" playbooks/replicate.yml

step "Verifying the bytes: every source disk against its replica disk"
"${LABCTL[@]}" compare | "$PY" -c 'import json,sys
r = json.load(sys.stdin)
for d in r["disks"]:
    print("%-6s disk %d -> %-14s %s  %s" % (d["vm"], d["disk"], d["replica"], d["source_sha256"][:16], "equal" if d["equal"] else "DIFFERENT"))
sys.exit(0 if r["equal"] else 1)'

# checksums of app01's replica disks vs a saved source checksum file (or the live source disks)
replica_matches() {
  "${LABCTL[@]}" checksum app01_replica --site target | "$PY" -c 'import json,sys
replica = [d["sha256"] for d in json.load(sys.stdin)["disks"]]
source = [d["sha256"] for d in json.load(open(sys.argv[1]))["disks"]]
for i, (a, b) in enumerate(zip(source, replica)):
    print("  app01 disk %d: source %s replica %s %s" % (i, a[:16], b[:16], "equal" if a == b else "DIFFERENT"))
sys.exit(0 if source == replica and len(source) == len(replica) else 1)' "$1"
}
cycle1=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["run_id"])' "$REPORTS/report-cycle1.json")

step "Test failover of app01 to the older restore point $cycle1 (isolated network, source untouched)"
"${PLAYBOOK[@]}" playbooks/failover.yml -l app01 -e failover_state=test -e failover_restore_point="$cycle1" \
  -e '{"failover_test_network": "DR Network"}'
echo "app01's replica now holds the bytes of cycle 1:"
replica_matches "$REPORTS/app01-cycle1.json"

step "Undo the test failover: the replica returns to the newest restore point"
"${PLAYBOOK[@]}" playbooks/failover.yml -l app01 -e failover_state=undone
"${LABCTL[@]}" checksum app01 > "$REPORTS/app01-now.json"
replica_matches "$REPORTS/app01-now.json"

step "Failover of app01 for real: production down, the replica runs and its guest writes"
cp "$REPORTS/report.md" "$REPORTS/report-cycle2.md"
ANSIBLE=("$(dirname "$PY")/ansible" -i "$INVENTORY" localhost)
"${ANSIBLE[@]}" -m replicator.vsphere.vm_power -a '{"hostname": "{{ replicate_source.hostname }}",
  "port": "{{ replicate_source.port }}", "username": "{{ replicate_source.username }}",
  "password": "{{ replicate_source.password }}", "ca_path": "{{ replicate_source.ca_path }}", "name": "app01",
  "state": "shutdown_guest", "force_after_timeout": true}' >/dev/null
"${PLAYBOOK[@]}" playbooks/failover.yml -l app01 -e failover_state=failed_over
"${LABCTL[@]}" write app01_replica --site target --disk 0 --offset 3145728 --length 196608 --seed 31 >/dev/null
"${LABCTL[@]}" write app01_replica --site target --disk 1 --percent 1 --seed 32 >/dev/null
"${LABCTL[@]}" checksum app01_replica --site target > "$REPORTS/app01-replica-failed-over.json"

step "Failback of app01 into the original VM (only the blocks that differ travel), replication resumes"
# lab deltas are raw full images: labctl serve-nbd exports them (a real proxy uses the role's qemu-nbd default)
py_abs=$(cd "$(dirname "$PY")" && pwd)/$(basename "$PY")
lab_abs=$(cd "$LAB_DIR" && pwd)
"${PLAYBOOK[@]}" playbooks/failback.yml -l app01 -e "{\"failback_nbd_export_command\": [\"$py_abs\", \"$PWD/tests/lab/labctl.py\",
  \"--workdir\", \"$lab_abs\", \"serve-nbd\", \"--socket\", \"{socket}\", \"--pidfile\", \"{pidfile}\", \"{path}\"],
  \"failback_work_dir\": \"$lab_abs/nbd\"}" | tee "$REPORTS/failback.log" | grep -E 'is back on production|^PLAY RECAP' -A1 || true
grep -q 'failed=0' "$REPORTS/failback.log"
echo "app01 (the original) now holds what its replica held when it was shut down:"
"${LABCTL[@]}" checksum app01 | "$PY" -c 'import json,sys
original = [d["sha256"] for d in json.load(sys.stdin)["disks"]]
replica = [d["sha256"] for d in json.load(open(sys.argv[1]))["disks"]]
for i, (a, b) in enumerate(zip(replica, original)):
    print("  app01 disk %d: replica %s original %s %s" % (i, a[:16], b[:16], "equal" if a == b else "DIFFERENT"))
sys.exit(0 if original == replica else 1)' "$REPORTS/app01-replica-failed-over.json"
"${PLAYBOOK[@]}" playbooks/replicate.yml -l app01,localhost >/dev/null
cp "$REPORTS/report.md" "$REPORTS/report-after-failback.md"
cp "$REPORTS/report-cycle2.md" "$REPORTS/report.md"
"$PY" -c 'import json,sys
vm = [v for v in json.load(open(sys.argv[1]))["vms"] if v["vm"] == "app01"][0]
print("next cycle of app01: plans %s, %d bytes sent" % (",".join(d["plan"] for d in vm["disks"]),
      sum(int(d["bytes_sent"]) for d in vm["disks"])))' "$REPORTS/report.json"
"${LABCTL[@]}" checksum app01 > "$REPORTS/app01-now.json"
replica_matches "$REPORTS/app01-now.json"

step "Run report (cycle 2)"
cat "$REPORTS/report.md"
printf '\nDemo finished: reports in %s (report-cycle1.md for the full cycle)\n' "$REPORTS"
