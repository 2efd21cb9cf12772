#!/usr/bin/env bash
# Submits a sharded `bulwark bench` to Slurm: an array of N shard tasks (bench-array.sbatch) and a
# merge job (bench-merge.sbatch) that starts when every task has succeeded. Prints the two job IDs.
#
#   deploy/slurm/submit-bench.sh CONFIG.json OUTDIR N [bench options]
#
# The merged report is OUTDIR/report.json. Extra sbatch options (partition, account, time limit) go
# in SBATCH_* environment variables, which sbatch reads, e.g. SBATCH_PARTITION=gpu.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
config=${1:?usage: submit-bench.sh CONFIG.json OUTDIR N [bench options]}
outdir=${2:?usage: submit-bench.sh CONFIG.json OUTDIR N [bench options]}
count=${3:?usage: submit-bench.sh CONFIG.json OUTDIR N [bench options]}
shift 3
[[ "$count" =~ ^[1-9][0-9]*$ ]] || { echo "submit-bench: N must be a positive integer, got '$count'" >&2; exit 64; }
# The jobs run in OUTDIR: a relative BULWARK path must not change meaning there.
if [[ "${BULWARK:-}" == */* ]]; then export BULWARK=$(realpath "$BULWARK"); fi
mkdir -p "$outdir"
outdir=$(cd "$outdir" && pwd)
config=$(cd "$(dirname "$config")" && pwd)/$(basename "$config")
array=$(sbatch --parsable --array="0-$((count - 1))" --chdir="$outdir" "$here/bench-array.sbatch" "$config" "$outdir" "$@")
array=${array%%;*}
merge=$(sbatch --parsable --dependency="afterok:$array" --kill-on-invalid-dep=yes --chdir="$outdir" \
    "$here/bench-merge.sbatch" "$outdir" "$outdir/report.json")
merge=${merge%%;*}
echo "$array $merge"
