#!/bin/sh
# Shadow-model training for LiRA (Carlini et al., 2022), Bulwark vs PyTorch eager, in one run on
# this machine: 17 models (a target and 16 shadows) of 784-256-256-10, Adam 1e-3, batch 128,
# 5 epochs, each on about half of a 60,000-record pool, then every model's logits on the pool.
# Bulwark trains two models side by side (one thread each); PyTorch one after another on two
# threads (its fastest setting for this size here). Not run in CI.
#
#   swift build -c release && Benchmarks/peers/setup.sh && Benchmarks/peers/compare_shadow_training.sh
set -eu
cd "$(dirname "$0")/../.."
config=$(mktemp /tmp/bulwark-shadows.XXXXXX.json)
trap 'rm -f "$config"' EXIT
cat > "$config" <<'JSON'
{"schema": "bulwark-membership-config/1", "seed": 0, "shadows": 16, "attacks": ["lira-online"],
 "targets": [{"name": "standard", "pool": 60000, "recipe": {"architecture": "784-256-256-10", "epochs": 5, "batch_size": 128}}]}
JSON
bulwark=$(.build/release/bulwark threat membership --config "$config" --json --threads 2 | head -1)
torch=$(Benchmarks/peers/.venv/bin/python Benchmarks/peers/shadow_models_torch.py --models 17 --pool 60000 --epochs 5 --threads 2)
echo "bulwark: $bulwark" | cut -c1-400
echo "pytorch: $torch"
python3 - "$bulwark" "$torch" <<'PY'
import json, sys
b, t = json.loads(sys.argv[1]), json.loads(sys.argv[2])
torch_seconds = t["train_seconds"] + t["score_seconds"]
print(f"17 models: Bulwark {b['training_seconds']:.1f} s (target test accuracy {b['target_test_accuracy']:.4f}), "
      f"PyTorch {torch_seconds:.1f} s (mean test accuracy {t['mean_test_accuracy']:.4f}): "
      f"Bulwark is {torch_seconds / b['training_seconds']:.2f}x faster")
PY
