#!/usr/bin/env bash
# Submits a sharded `bulwark bench` to Slurm: an array of N shard tasks (bench-array.sbatch) and a
# merge job (bench-merge.sbatch) that starts when every task has succeeded. Prints the two job IDs.
#
#   deploy/slurm/submit-bench.sh CONFIG.json OUTDIR N [bench options]
#
# The merged report is OUTDIR/report.json. OUTDIR must not hold parts of an earlier run (the merge
# would refuse a mix). The jobs run in OUTDIR, so give paths in bench options as absolute paths.
# Extra sbatch options (partition, account, time limit) go in SBATCH_* environment variables, which
# sbatch reads, e.g. SBATCH_PARTITION=cpu.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
usage="usage: submit-bench.sh CONFIG.json OUTDIR N [bench options]"
config=${1:?$usage}
outdir=${2:?$usage}
count=${3:?$usage}
shift 3
[[ "$count" =~ ^[1-9][0-9]*$ ]] || { echo "submit-bench: N must be a positive integer, got '$count'" >&2; exit 64; }
[[ -f "$config" ]] || { echo "submit-bench: no configuration file at '$config'" >&2; exit 66; }
config=$(realpath "$config")
# The jobs run in OUTDIR: a relative BULWARK path must not change meaning there.
if [[ "${BULWARK:-}" == */* ]]; then
    bulwark=$(realpath "$BULWARK")
    export BULWARK=$bulwark
fi
mkdir -p "$outdir"
outdir=$(realpath "$outdir")
if compgen -G "$outdir/part-*.json" >/dev/null; then
    echo "submit-bench: $outdir already holds part-*.json from an earlier run; choose an empty OUTDIR or remove them" >&2
    exit 73
fi
array=$(sbatch --parsable --array="0-$((count - 1))" --chdir="$outdir" "$here/bench-array.sbatch" "$config" "$outdir" "$count" "$@")
array=${array%%;*}
merge=$(sbatch --parsable --dependency="afterok:$array" --kill-on-invalid-dep=yes --chdir="$outdir" \
    "$here/bench-merge.sbatch" "$outdir" "$outdir/report.json")
merge=${merge%%;*}
echo "$array $merge"
