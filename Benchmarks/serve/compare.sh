#!/usr/bin/env bash
# Loads `bulwark serve`, Flask (gunicorn, gthread) and FastAPI (uvicorn) one after the other with the
# same wrk run (run_load.sh: -t2 -c64, DURATION, the same body, key, model and certificate) and prints
# one JSON line per server. Run it on a quiet machine (no swift build): ratios are only meaningful
# within one run.
#
#   Benchmarks/serve/compare.sh [BODY_ROWS] [SERVERS...]      # defaults: 1 row; bulwark flask-dev flask fastapi
#   DURATION=60s WORKERS=2 Benchmarks/serve/compare.sh 32
#
# Needs: a release build (swift build -c release), Benchmarks/peers/setup.sh, wrk (apt-get install -y wrk).
# Bulwark runs with its defaults (JSON request logs to a file, micro-batching) except a per-key
# concurrency limit raised to 128, since all 64 wrk connections use one key. The peers run WORKERS
# processes (default 2, one per core) with one torch thread each.
set -euo pipefail
cd "$(dirname "$0")/../.."
rows=${1:-1}
shift || true
servers=("$@")
[ ${#servers[@]} -gt 0 ] || servers=(bulwark flask-dev flask fastapi)
workers=${WORKERS:-2}
bulwark=.build/release/bulwark
python=Benchmarks/peers/.venv/bin/python
[ -x "$bulwark" ] || { echo "compare.sh: build first: swift build -c release" >&2; exit 2; }
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
port=${PORT:-18443}

"$bulwark" serve dev-cert --out "$work/tls" >/dev/null 2>&1
"$bulwark" serve keys add --api-keys "$work/keys.json" --name load --role predictor --rate 1000000 --burst 1000000 > "$work/key.txt" 2>/dev/null
echo '{"max_concurrent_requests_per_key": 128}' > "$work/serve.json"
python3 Benchmarks/serve/make_body.py --rows "$rows" --out "$work/body.json" >&2

wait_ready() {  # until the port answers (the model has loaded)
    for _ in $(seq 1 100); do
        curl -sk -o /dev/null "https://127.0.0.1:$port/healthz" 2>/dev/null && return 0
        curl -sk -o /dev/null "https://127.0.0.1:$port/" 2>/dev/null && return 0
        sleep 0.2
    done
    echo "compare.sh: the server did not start" >&2; return 1
}

for server in "${servers[@]}"; do
    case $server in
    bulwark)
        "$bulwark" serve --model m=models/mlp-standard.safetensors --api-keys "$work/keys.json" --port "$port" \
            --tls-cert "$work/tls/cert.pem" --tls-key "$work/tls/key.pem" --config "$work/serve.json" 2> "$work/bulwark.log" &
        ;;
    flask-dev)  # the issue's "usual answer": Flask's own server (werkzeug, a thread per connection)
        (cd Benchmarks/peers && exec .venv/bin/python serve_flask.py --model ../../models/mlp-standard.safetensors --name m \
            --api-key-file "$work/key.txt" --cert "$work/tls/cert.pem" --key "$work/tls/key.pem" --port "$port" \
            --torch-threads 1) > "$work/flask-dev.log" 2>&1 &
        ;;
    flask)
        (cd Benchmarks/peers && BULWARK_PEER_MODEL=../../models/mlp-standard.safetensors BULWARK_PEER_MODEL_NAME=m \
            BULWARK_PEER_API_KEY_FILE="$work/key.txt" BULWARK_PEER_TORCH_THREADS=1 \
            exec .venv/bin/gunicorn -w "$workers" -k gthread --threads 8 -b "127.0.0.1:$port" \
                --certfile "$work/tls/cert.pem" --keyfile "$work/tls/key.pem" --no-control-socket \
                --log-level warning 'serve_flask:create_app()') 2> "$work/flask.log" &
        ;;
    fastapi)
        (cd Benchmarks/peers && exec .venv/bin/python serve_fastapi.py --model ../../models/mlp-standard.safetensors --name m \
            --api-key-file "$work/key.txt" --cert "$work/tls/cert.pem" --key "$work/tls/key.pem" --port "$port" \
            --workers "$workers" --torch-threads 1) > "$work/fastapi.log" 2>&1 &
        ;;
    *) echo "compare.sh: unknown server $server (bulwark, flask, flask-dev, fastapi)" >&2; exit 2 ;;
    esac
    pid=$!
    wait_ready
    sleep 1
    rss_before=$(ps -o rss= -p "$pid" | tr -d ' ')
    CACERT="$work/tls/cert.pem" Benchmarks/serve/run_load.sh "https://localhost:$port/v1/models/m/predict" "$work/key.txt" \
        "$work/body.json" "$server rows=$rows" 2>/dev/null
    echo "{\"server\": \"$server\", \"rss_kib_before\": $rss_before, \"rss_kib_after\": $(ps -o rss= -p "$pid" | tr -d ' ')}"
    kill -TERM "$pid"; wait "$pid" 2>/dev/null || true
    pkill -f "gunicorn.*serve_flask|serve_fastapi|serve_flask.py" 2>/dev/null || true
    sleep 2
done
