#!/usr/bin/env bash
# Single-node Slurm test of sharded benches: brings up slurmctld, slurmd and munge on this machine
# (Debian's slurm-wlm, with a slurm.conf generated for it in a scratch directory), submits
# deploy/slurm/submit-bench.sh (a 3-task job array and a dependent merge job) with the committed
# sample data and a small configuration, waits for both, and checks with `bulwark report diff` that
# the merged report equals an unsharded run's. Then stops the daemons. Needs root (it installs
# packages and runs the daemons). Skipped, with a message, only if slurm-wlm cannot be installed.
#
#   scripts/slurm-test.sh [path/to/bulwark]     (default: builds and uses .build/debug/bulwark)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
export PATH="/opt/swift/usr/bin:$PATH"
say() { echo "slurm-test: $*" >&2; }

if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
    say "installing slurm-wlm and munge"
    if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge >/dev/null; }; then
        say "SKIPPED: slurm-wlm and munge could not be installed with apt-get on this machine"
        exit 0
    fi
fi

bulwark=${1:+$(realpath "$1")}
if [ -z "$bulwark" ]; then
    swift build --product bulwark >/dev/null
    bulwark=$root/.build/debug/bulwark
fi

work=$(mktemp -d /tmp/bulwark-slurm.XXXXXX)
host=$(hostname -s)
export SLURM_CONF=$work/slurm.conf
started_munge=""
cleanup() {
    status=$?
    scancel --quiet --user=root 2>/dev/null || true
    for daemon in slurmd slurmctld; do
        [ -f "$work/$daemon.pid" ] || continue
        pid=$(cat "$work/$daemon.pid")
        kill "$pid" 2>/dev/null || continue
        for _ in $(seq 30); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
        kill -9 "$pid" 2>/dev/null || true
    done
    if [ -n "$started_munge" ] && [ -f /run/munge/munged.pid ]; then kill "$(cat /run/munge/munged.pid)" 2>/dev/null || true; fi
    if [ "$status" -ne 0 ]; then
        say "failed; the logs are in $work:"
        tail -n 20 "$work"/*.log "$work"/results/*.out >&2 || true
    else
        rm -rf "$work"
    fi
}
trap cleanup EXIT

# munge: a 1024-byte key owned by munge, mode 0400; the daemon runs as munge.
mkdir -p /etc/munge /run/munge /var/log/munge /var/lib/munge
if [ ! -s /etc/munge/munge.key ]; then dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none; fi
chown -R munge:munge /etc/munge /run/munge /var/log/munge /var/lib/munge
chmod 0400 /etc/munge/munge.key
if ! pgrep -x munged >/dev/null; then
    runuser -u munge -- munged
    started_munge=yes
fi

memory=$(( $(awk '/MemTotal/ {print int($2 / 1024)}' /proc/meminfo) - 1024 ))
mkdir -p "$work/state" "$work/spool" "$work/results"
cat > "$SLURM_CONF" <<CONF
ClusterName=bulwark-ci
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
MpiDefault=none
ReturnToService=2
StateSaveLocation=$work/state
SlurmdSpoolDir=$work/spool
SlurmctldPidFile=$work/slurmctld.pid
SlurmdPidFile=$work/slurmd.pid
SlurmctldLogFile=$work/slurmctld.log
SlurmdLogFile=$work/slurmd.log
JobCompType=jobcomp/none
AccountingStorageType=accounting_storage/none
NodeName=$host CPUs=$(nproc) RealMemory=$memory State=UNKNOWN
PartitionName=ci Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF
slurmctld -f "$SLURM_CONF"
slurmd -f "$SLURM_CONF"
for _ in $(seq 60); do
    state=$(sinfo -h -o %t 2>/dev/null || true)
    [ "$state" = "idle" ] && break
    sleep 1
done
[ "$state" = "idle" ] || { say "the node did not come up (sinfo: '${state:-nothing}')"; exit 1; }
say "single-node cluster up ($host, $(nproc) CPUs)"

# A small bench on the committed sample: two shipped models, FGSM and PGD-10 at two ε, 100 examples.
cat > "$work/bench.json" <<JSON
{
  "schema": "bulwark-bench-config/2",
  "seed": 7,
  "epsilons": [0, 0.05, 0.1],
  "dataset": {"name": "fashion-mnist-sample", "split": "test", "n": 100, "data_dir": "$root/datasets/fashion-mnist-sample"},
  "models": [
    {"name": "standard", "path": "$root/models/mlp-standard.safetensors"},
    {"name": "pgd", "path": "$root/models/mlp-pgd.safetensors"}
  ],
  "attacks": [
    {"name": "FGSM", "type": "fgsm", "norm": "linf"},
    {"name": "PGD-10", "type": "pgd", "norm": "linf", "steps": 10}
  ],
  "check_examples": 50
}
JSON

started=$(date +%s)
submitted=$(BULWARK=$bulwark BULWARK_THREADS=2 deploy/slurm/submit-bench.sh "$work/bench.json" "$work/results" 3)
read -r array merge <<< "$submitted"
say "submitted array job $array (3 shards) and merge job $merge"
for _ in $(seq 600); do
    [ -z "$(squeue -h -j "$array,$merge" 2>/dev/null)" ] && break
    sleep 1
done
[ -z "$(squeue -h -j "$array,$merge" 2>/dev/null)" ] || { say "the jobs did not finish within 10 minutes"; exit 1; }
[ -s "$work/results/report.json" ] || { say "the merge job wrote no report"; exit 1; }
say "array and merge finished in $(( $(date +%s) - started )) s"

"$bulwark" bench --config "$work/bench.json" --threads 2 --report "$work/unsharded.json" >/dev/null 2>"$work/unsharded.log"
"$bulwark" report diff "$work/unsharded.json" "$work/results/report.json"
say "passed: the merged report of 3 Slurm array tasks equals the unsharded run"
