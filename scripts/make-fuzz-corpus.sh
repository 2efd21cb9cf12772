#!/usr/bin/env bash
# Makes the seed corpus in Fuzz/Corpus/<target>/ (committed; regenerate with this script).
# Seeds are small valid inputs (and a few near-misses) so the fuzzers start from real structure.
# Encrypted seeds use the fixed fuzzing key FuzzTargets.key (bytes 0, 1, …, 31).
set -euo pipefail
cd "$(dirname "$0")/.."
bulwark=${BULWARK:-.build/debug/bulwark}
corpus=Fuzz/Corpus
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
rm -rf "$corpus" && mkdir -p "$corpus"/{safetensors,idx,csv,manifest,container,fernet,config,predict,keyfile,audit,servecfg,membership,threatreport,modelsig}

python3 - "$corpus" <<'PY'
import gzip, json, struct, sys
corpus = sys.argv[1]

def safetensors(tensors, metadata, dtype="F32"):
    header, offset, data = {}, 0, b""
    if metadata:
        header["__metadata__"] = metadata
    for name, (shape, values) in tensors.items():
        raw = struct.pack(f"<{len(values)}{'e' if dtype == 'F16' else 'f'}", *values)
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(raw)]}
        offset += len(raw)
        data += raw
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + data

arch = json.dumps([{"type": "dense", "in": 4, "out": 3}, {"type": "relu"}, {"type": "dense", "in": 3, "out": 2}])
model = {"0.weight": ([3, 4], [0.1 * i for i in range(12)]), "0.bias": ([3], [0.0, 0.1, 0.2]),
         "2.weight": ([2, 3], [0.5, -0.5, 0.25, 1.0, 0.0, -1.0]), "2.bias": ([2], [0.0, 0.0])}
open(f"{corpus}/safetensors/model.safetensors", "wb").write(safetensors(model, {"architecture": arch, "seed": "0"}))
open(f"{corpus}/safetensors/no-metadata.safetensors", "wb").write(safetensors({"a": ([2], [1.0, 2.0])}, None))
open(f"{corpus}/safetensors/empty.safetensors", "wb").write(safetensors({}, {"format": "bulwark-model/1"}))
# A state dict written by PyTorch (no metadata: the architecture is inferred), half precision,
# and hostile declarations: an architecture of 10^12 parameters in a tiny file, 2,000 layers.
open(f"{corpus}/safetensors/torch-sequential.safetensors", "wb").write(safetensors(model, None))
open(f"{corpus}/safetensors/f16.safetensors", "wb").write(safetensors(model, {"architecture": arch}, dtype="F16"))
huge = json.dumps([{"type": "dense", "in": 784, "out": 1048576}, {"type": "relu"}, {"type": "dense", "out": 1048576},
                   {"type": "relu"}, {"type": "dense", "out": 10}])
open(f"{corpus}/safetensors/huge-architecture.safetensors", "wb").write(safetensors({"0.weight": ([1], [0.0])}, {"architecture": huge}))
deep = json.dumps([{"type": "dense", "in": 4, "out": 3}] + [{"type": "relu"}] * 2000 + [{"type": "dense", "out": 2}])
open(f"{corpus}/safetensors/deep.safetensors", "wb").write(safetensors({"0.weight": ([1], [0.0])}, {"architecture": deep}))

def idx(dims, data):
    return bytes([0, 0, 8, len(dims)]) + b"".join(struct.pack(">I", d) for d in dims) + bytes(data)
images = idx([2, 3, 3], range(18))
open(f"{corpus}/idx/images.idx", "wb").write(images)
open(f"{corpus}/idx/labels.idx", "wb").write(idx([4], [0, 1, 2, 9]))
open(f"{corpus}/idx/images.idx.gz", "wb").write(gzip.compress(images, mtime=0))
open(f"{corpus}/idx/truncated.idx", "wb").write(images[:-3])

open(f"{corpus}/csv/header.csv", "w").write('label,"a, b",c\n1,0.5,2\n0,1e-3,-4\n')
open(f"{corpus}/csv/crlf.csv", "w").write("3,1,2,3\r\n2,4,5,6\r\n")
open(f"{corpus}/csv/ragged.csv", "w").write("1,2\n1,2,3\n")

# Bench configurations (the strict decoder of files people write): v2 with a recipe, per-attack grids
# and goals; v1; a misspelled key.
v2 = {"schema": "bulwark-bench-config/2", "seed": 0, "epsilons": [0, 0.1], "dataset": {"name": "fashion-mnist", "n": 100},
      "models": [{"name": "m", "path": "m.safetensors", "recipe": {"architecture": "784-16-10", "epochs": 1,
                  "objective": {"type": "adversarial", "attack": {"type": "pgd", "steps": 3}, "epsilon": 0.1}}}],
      "attacks": [{"name": "F", "type": "fgsm"}, {"name": "P", "type": "pgd", "norm": "l2", "epsilons": [0.5], "targeted": "random"}]}
json.dump(v2, open(f"{corpus}/config/v2.json", "w"))
v1 = {"schema": "bulwark-bench-config/1", "seed": 0, "epsilons": [0, 0.1], "dataset": {"name": "fashion-mnist", "split": "test", "n": 10},
      "models": [{"name": "m", "path": "m.safetensors", "train": ["--epochs", "1"]}], "attacks": [{"name": "F", "type": "fgsm", "norm": "linf"}]}
json.dump(v1, open(f"{corpus}/config/v1.json", "w"))
open(f"{corpus}/config/typo.json", "w").write(json.dumps(v2).replace("epsilons", "epsilon", 1))

# bulwark serve: predict bodies (first byte even: rows of 3 values; odd: 784), --config files.
open(f"{corpus}/predict/narrow.json", "wb").write(b"\x00" + json.dumps({"inputs": [[0, 0.5, 1], [1e-3, 0.25, 0.125]]}).encode())
open(f"{corpus}/predict/wide.json", "wb").write(b"\x01" + json.dumps({"inputs": [[0.5] * 784]}).encode())
open(f"{corpus}/predict/unknown-field.json", "wb").write(b"\x00" + b'{"inputs": [[0, 0, 0]], "extra": {"a": [1, "x", null]}}')
open(f"{corpus}/predict/float32.bin", "wb").write(b"\x00" + struct.pack("<6f", 0, 0.5, 1, 0.25, 0.75, 0.125))
open(f"{corpus}/servecfg/limits.json", "w").write(json.dumps({"max_rows": 64, "max_concurrent_requests": 32, "max_queue_rows": 1024,
    "max_batch_rows": 128, "batch_window_microseconds": 0, "max_connections": 100, "idle_timeout_seconds": 5,
    "body_timeout_seconds": 5, "shutdown_timeout_seconds": 10, "metrics_port": 9100}))
open(f"{corpus}/servecfg/typo.json", "w").write('{"max_row": 1}')
PY

# Manifests, containers and tokens are made with bulwark itself.
printf '%s' "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=" > "$work/fuzz.key" && chmod 600 "$work/fuzz.key"
mkdir -p "$work/dir" && printf 'hello' > "$work/dir/a.txt" && printf 'world' > "$work/dir/b.bin"
"$bulwark" manifest create "$work/dir" >/dev/null
cp "$work/dir/bulwark-manifest.json" "$corpus/manifest/unsigned.json"
"$bulwark" keys generate --out "$work/keys" >/dev/null
"$bulwark" manifest sign "$work/dir" --key "$work/keys/bulwark-signing.key" >/dev/null
cp "$work/dir/bulwark-manifest.json" "$corpus/manifest/signed.json"
: > "$work/empty"
head -c 3000 /dev/zero | tr '\0' 'x' > "$work/three-kb"
for name in empty three-kb; do
    "$bulwark" data encrypt --key-file "$work/fuzz.key" "$work/$name" "$corpus/container/$name.bwenc" >/dev/null
    "$bulwark" data encrypt --format fernet --key-file "$work/fuzz.key" "$work/$name" "$corpus/fernet/$name.fernet" >/dev/null
    "$bulwark" data encrypt --kek-file "$work/fuzz.key" "$work/$name" "$corpus/container/$name.envelope.bwenc" >/dev/null
done
# API-key files and an audit log, made by bulwark serve itself.
"$bulwark" serve keys add --api-keys "$work/keys.json" --name ci --role predictor --rate 5 --burst 10 >/dev/null 2>&1
"$bulwark" serve keys add --api-keys "$work/keys.json" --name ops --role admin --output top-k:3 >/dev/null 2>&1
"$bulwark" serve keys revoke --api-keys "$work/keys.json" --name ci >/dev/null 2>&1
cp "$work/keys.json" "$corpus/keyfile/keys.json"
"$bulwark" serve dev-cert --out "$work/tls" >/dev/null 2>&1
"$bulwark" manifest create "$work/dir" >/dev/null
"$bulwark" serve --model m=models/mlp-standard.safetensors --api-keys "$work/keys.json" --tls-cert "$work/tls/cert.pem" \
    --tls-key "$work/tls/key.pem" --port 0 --audit-log "$work/audit.jsonl" 2>/dev/null & serve=$!
sleep 2; kill -TERM $serve; wait $serve || true
cp "$work/audit.jsonl" "$corpus/audit/audit.jsonl"
# OMS model signatures: one signed by FuzzTargets.modelSigningKey (the P-256 scalar 0x0707…07), the
# reference tool's fixtures, and the spec's test vectors (valid and invalid).
python3 - "$work/fuzz-oms.pem" <<'PY'
import sys
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
key = ec.derive_private_key(int.from_bytes(b"\x07" * 32, "big"), ec.SECP256R1())
open(sys.argv[1], "wb").write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
PY
chmod 600 "$work/fuzz-oms.pem"
"$bulwark" sign "$work/dir" --key "$work/fuzz-oms.pem" --signature "$work/files.sig" >/dev/null
"$bulwark" sign "$work/dir" --key "$work/fuzz-oms.pem" --signature "$work/shards.sig" --shards --shard-size 3 >/dev/null
cp "$work/files.sig" "$work/shards.sig" "$corpus/modelsig/"
for signature in Tests/SecurityTests/Fixtures/oms/*.sig; do cp "$signature" "$corpus/modelsig/oms-$(basename "$signature")"; done
for version in v1.0.1 v0.3.1; do
    cp "Tests/SecurityTests/Fixtures/oms-legacy/$version-elliptic-key/model.sig" "$corpus/modelsig/legacy-$version.sig"
done
for vector in Tests/SecurityTests/Fixtures/oms-spec-vectors/*/*.bundle.json; do
    cp "$vector" "$corpus/modelsig/$(basename "$(dirname "$vector")")-$(basename "$vector")"
done
rm -f "$corpus"/*/bulwark-manifest.json "$corpus"/*/.bulwark-manifest.lock
echo "seed corpus: $(find "$corpus" -type f | wc -l) files in $corpus"
