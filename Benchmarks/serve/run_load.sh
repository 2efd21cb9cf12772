#!/usr/bin/env bash
# Load one predict endpoint with wrk and print post.lua's JSON line on stdout (wrk's own report goes to stderr).
#
#   run_load.sh URL API_KEY_FILE BODY_FILE [LABEL]
#   run_load.sh https://127.0.0.1:8443/v1/models/mlp-standard/predict /tmp/bw/key.txt /tmp/body1.json flask
#
# Runs: wrk -t$THREADS -c$CONNECTIONS -d$DURATION --latency [--timeout $TIMEOUT] -s post.lua URL
# Environment (defaults): THREADS=2 CONNECTIONS=64 DURATION=60s TIMEOUT= (empty: wrk's default, 2s)
#   AUTH=bearer|x-api-key (bearer)  COUNT_STATUS=1 to count every status >= 300 in a Lua callback (slower wrk)
#   CACERT=FILE to verify the server certificate in the preflight request (else curl -k; wrk never verifies)
# A single curl request is sent first and the run is refused unless it returns 200, so a wrong key,
# model name or body doesn't produce a minute of 4xx. Needs wrk 4.1.0 (apt-get install -y wrk) and curl.
set -euo pipefail
if [ $# -lt 3 ] || [ $# -gt 4 ]; then
  sed -n '2,4p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
fi
url=$1 key_file=$2 body=$3 label=${4:-}
here=$(cd "$(dirname "$0")" && pwd)
command -v wrk >/dev/null || { echo "run_load.sh: wrk not found: apt-get install -y wrk" >&2; exit 2; }
[ -r "$key_file" ] || { echo "run_load.sh: cannot read API key file $key_file" >&2; exit 2; }
[ -r "$body" ] || { echo "run_load.sh: cannot read body $body (make_body.py writes one)" >&2; exit 2; }
key=$(head -n 1 "$key_file" | tr -d '\r\n')

if [ "${AUTH:-bearer}" = x-api-key ]; then auth_header="X-API-Key: $key"; else auth_header="Authorization: Bearer $key"; fi
tls=(-k); [ -n "${CACERT:-}" ] && tls=(--cacert "$CACERT")
status=$(curl -sS "${tls[@]}" -o /dev/null -w '%{http_code}' -H 'Content-Type: application/json' \
  -H @- --data-binary @"$body" "$url" <<<"$auth_header") || status=000
if [ "$status" != 200 ]; then
  echo "run_load.sh: preflight POST $url returned $status, not 200; not loading" >&2
  exit 1
fi

out=$(mktemp)
trap 'rm -f "$out"' EXIT
WRK_BODY_FILE=$body WRK_API_KEY=$key WRK_AUTH=${AUTH:-bearer} WRK_LABEL=$label \
WRK_CONNECTIONS=${CONNECTIONS:-64} WRK_COUNT_STATUS=${COUNT_STATUS:-0} \
  wrk -t"${THREADS:-2}" -c"${CONNECTIONS:-64}" -d"${DURATION:-60s}" --latency \
      ${TIMEOUT:+--timeout "$TIMEOUT"} -s "$here/post.lua" "$url" >"$out"
grep -v '^{' "$out" >&2 || true
grep '^{' "$out" | tail -n 1
