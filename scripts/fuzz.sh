#!/usr/bin/env bash
# Builds Bulwark's libFuzzer targets (Fuzz/, swiftc -sanitize=fuzzer,address through SwiftPM) and
# runs each one, starting from the committed seed corpus in Fuzz/Corpus/<target>. New interesting
# inputs go to a scratch corpus (not committed); crashes, leaks, time-outs and allocation bombs go to
# Fuzz/Crashes/.
#
#     scripts/fuzz.sh [RUNS] [TARGET...]       # default: 1000000 runs of every target
#     FUZZ_SECONDS=20 scripts/fuzz.sh -1       # time-bounded instead: 20 s per target (CI: .ci/run)
#
# Every run has -rss_limit_mb=2048 and -malloc_limit_mb=1024: an input that makes a parser allocate
# more than 1 GiB at once, or hold more than 2 GiB, is a failure (the hostile-file bounds must hold).
# Targets: safetensors idx csv manifest container fernet config predict keyfile audit servecfg membership threatreport modelsig. Prints one summary line per target.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-1000000}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(safetensors idx csv manifest container fernet config predict keyfile audit servecfg membership threatreport modelsig)
declare -A binaries=([safetensors]=FuzzSafeTensors [idx]=FuzzIDX [csv]=FuzzCSV [manifest]=FuzzManifest
                     [container]=FuzzContainer [fernet]=FuzzFernet [config]=FuzzConfig
                     [predict]=FuzzPredict [keyfile]=FuzzKeyFile [audit]=FuzzAudit [servecfg]=FuzzServeConfig
                     [membership]=FuzzMembershipConfig [threatreport]=FuzzThreatReport
                     [modelsig]=FuzzModelSignature)
limits=(-rss_limit_mb=2048 -malloc_limit_mb=1024 -timeout=10 -max_len=65536)
if [ -n "${FUZZ_SECONDS:-}" ]; then limits+=(-max_total_time="$FUZZ_SECONDS"); fi

# `--sanitize=fuzzer` alone instruments for coverage only the module with the entry point (seen with
# Swift 6.3: the library modules were compiled with -sanitize=address only, so the fuzzer ran nearly
# blind); the explicit coverage flags instrument every Swift module, the parsers included.
swift build -c release --package-path Fuzz --scratch-path .build-fuzz --sanitize=fuzzer --sanitize=address \
    -Xswiftc -sanitize-coverage=edge,inline-8bit-counters,pc-table >&2
mkdir -p Fuzz/Crashes
status=0
for target in "${targets[@]}"; do
    binary=.build-fuzz/release/${binaries[$target]:?unknown target $target}
    scratch=$(mktemp -d)
    log=$(mktemp)
    start=$(date +%s)
    if "$binary" -runs="$runs" "${limits[@]}" -print_final_stats=1 \
        -artifact_prefix="Fuzz/Crashes/$target-" "$scratch" "Fuzz/Corpus/$target" >"$log" 2>&1; then
        result="no crash"
    else
        result="FAILED (see Fuzz/Crashes/ and $log)"
        tail -40 "$log" >&2
        status=1
    fi
    seconds=$(( $(date +%s) - start ))
    executed=$(grep -o 'stat::number_of_executed_units: [0-9]*' "$log" | grep -o '[0-9]*$' || echo "?")
    coverage=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*' || echo 0)
    if [ "$coverage" -lt 50 ]; then  # the seeds alone reach hundreds of edges when the parsers are instrumented
        result="FAILED (coverage $coverage edges: the parsers are not instrumented, so fuzzing is blind)"
        status=1
    fi
    echo "$target: $executed executions in ${seconds} s, coverage $coverage edges, $result"
    rm -rf "$scratch"
done
exit $status
