#!/usr/bin/env python3
"""Epoch time of `bulwark train` against PyTorch eager on the same CPU, data and recipe.

    Benchmarks/peers/setup.sh                      # once: PyTorch in Benchmarks/peers/.venv
    swift build -c release                         # in the repository root
    Benchmarks/peers/.venv/bin/python Benchmarks/peers/compare_training.py --epochs 5

Runs the two trainers one after the other (784-256-256-10, Adam 1e-3, batch 128, 54,000 training
examples, 2 threads each) and prints each epoch's seconds, the median per trainer and the ratio
PyTorch/Bulwark (above 1 means Bulwark is faster). The first epoch is included in the table but not
in the median.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def run_json_lines(command):
    result = subprocess.run(command, check=True, capture_output=True, text=True)
    return [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--data-dir", default="/usr/share/datasets/fashion-mnist")
    parser.add_argument("--bulwark", default=os.path.join(ROOT, ".build/release/bulwark"))
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        bulwark = run_json_lines([args.bulwark, "train", "--model", "784-256-256-10", "--epochs", str(args.epochs),
                                  "--batch", "128", "--optimizer", "adam", "--lr", "1e-3", "--seed", "0",
                                  "--threads", str(args.threads), "--data-dir", args.data_dir,
                                  "--out", os.path.join(tmp, "m.safetensors"), "--json"])
    torch = run_json_lines([sys.executable, os.path.join(HERE, "pytorch_mlp.py"), "--epochs", str(args.epochs),
                            "--threads", str(args.threads), "--data-dir", args.data_dir])
    b = [line["seconds"] for line in bulwark if line.get("type") == "epoch"]
    t = [line["seconds"] for line in torch if "epoch" in line]
    print(f"{'epoch':>5} {'bulwark s':>10} {'pytorch s':>10}")
    for i, (x, y) in enumerate(zip(b, t), 1):
        print(f"{i:>5} {x:>10.3f} {y:>10.3f}")
    mb, mt = statistics.median(b[1:] or b), statistics.median(t[1:] or t)
    summary_b = [line for line in bulwark if line.get("type") == "summary"][0]
    summary_t = [line for line in torch if line.get("type") == "summary"][0]
    print(f"median epoch: bulwark {mb:.3f} s, pytorch {mt:.3f} s (torch {summary_t['torch']}, {args.threads} threads)")
    print(f"test accuracy: bulwark {summary_b['test_accuracy']:.4f}, pytorch {summary_t['test_accuracy']:.4f}")
    print(f"ratio pytorch/bulwark: {mt / mb:.2f}x")


if __name__ == "__main__":
    main()
