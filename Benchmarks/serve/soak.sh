#!/usr/bin/env bash
# Memory soak of `bulwark serve`: wrk -t2 -c64 for DURATION (default 600 s) on one key with a 1-row
# body, the audit log on, and the server's RSS sampled every 30 s (printed as "seconds KiB").
#   Benchmarks/serve/soak.sh            # needs swift build -c release and wrk
set -euo pipefail
cd "$(dirname "$0")/../.."
seconds=${DURATION:-600}
bulwark=.build/release/bulwark
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
"$bulwark" serve dev-cert --out "$work/tls" >/dev/null 2>&1
"$bulwark" serve keys add --api-keys "$work/keys.json" --name soak --role predictor --rate 1000000 --burst 1000000 > "$work/key.txt" 2>/dev/null
echo '{"max_concurrent_requests_per_key": 128}' > "$work/serve.json"
python3 Benchmarks/serve/make_body.py --rows 1 --out "$work/body.json" >&2
"$bulwark" serve --model m=models/mlp-standard.safetensors --api-keys "$work/keys.json" --port 18443 --tls-cert "$work/tls/cert.pem" \
    --tls-key "$work/tls/key.pem" --config "$work/serve.json" --audit-log "$work/audit.jsonl" 2> "$work/serve.log" & pid=$!
sleep 2
DURATION=${seconds}s CACERT="$work/tls/cert.pem" Benchmarks/serve/run_load.sh https://localhost:18443/v1/models/m/predict \
    "$work/key.txt" "$work/body.json" soak 2>/dev/null > "$work/wrk.json" & load=$!
for ((t = 0; t <= seconds; t += 30)); do echo "$t $(ps -o rss= -p $pid | tr -d ' ')"; sleep 30; done
wait $load
cat "$work/wrk.json"
kill -TERM $pid; wait $pid
"$bulwark" audit verify "$work/audit.jsonl"
