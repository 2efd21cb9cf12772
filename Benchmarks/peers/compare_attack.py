#!/usr/bin/env python3
"""Images/s of PGD-10 (L∞, ε = 0.1, α = 0.025, random start) over the Fashion-MNIST test set:
`bulwark attack` against torchattacks' PGD on PyTorch CPU, on the same model file and machine.

    Benchmarks/peers/setup.sh                  # once: PyTorch + torchattacks in Benchmarks/peers/.venv
    swift build -c release                     # in the repository root
    Benchmarks/peers/.venv/bin/python Benchmarks/peers/compare_attack.py MODEL.safetensors [--batch 500]

The model is loaded into torch.nn.Sequential from the same safetensors file. Both tools run with
2 threads and the same batch size; the printed ratio is Bulwark's images/s over torchattacks'.
"""
import argparse
import json
import os
import subprocess
import time

import torch
import torchattacks

from pytorch_mlp import load
from torch_eval import build
from safetensors import safe_open
from safetensors.torch import load_file

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("model")
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--eps", type=float, default=0.1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--data-dir", default="/usr/share/datasets/fashion-mnist")
    parser.add_argument("--bulwark", default=os.path.join(ROOT, ".build/release/bulwark"))
    args = parser.parse_args()
    alpha = 2.5 * args.eps / args.steps

    torch.set_num_threads(args.threads)
    with safe_open(args.model, framework="pt") as f:
        model = build(f.metadata()["architecture"])
    model.load_state_dict(load_file(args.model))
    model.eval()
    x, y = load(args.data_dir, "test")
    attack = torchattacks.PGD(model, eps=args.eps, alpha=alpha, steps=args.steps, random_start=True)
    start = time.perf_counter()
    correct = 0
    for first in range(0, len(x), args.batch):
        xb, yb = x[first:first + args.batch], y[first:first + args.batch]
        adversarial = attack(xb, yb)
        with torch.no_grad():
            correct += (model(adversarial).argmax(1) == yb).sum().item()
    torch_seconds = time.perf_counter() - start
    torch_rate = len(x) / torch_seconds

    result = subprocess.run([args.bulwark, "attack", args.model, "--attack", "pgd", "--eps", str(args.eps),
                             "--steps", str(args.steps), "--step-size", str(alpha), "--batch", str(args.batch),
                             "--threads", str(args.threads), "--data-dir", args.data_dir, "--json"],
                            check=True, capture_output=True, text=True)
    bulwark = json.loads(result.stdout.strip().splitlines()[-1])
    print(f"torchattacks {torchattacks.__version__} PGD-{args.steps}: {torch_rate:8.0f} images/s, "
          f"adversarial accuracy {correct / len(x):.4f} ({torch_seconds:.2f} s)")
    print(f"bulwark PGD-{args.steps}:        {bulwark['images_per_second']:8.0f} images/s, "
          f"adversarial accuracy {bulwark['adversarial_accuracy']:.4f} ({bulwark['seconds']:.2f} s)")
    print(f"ratio bulwark/torchattacks: {bulwark['images_per_second'] / torch_rate:.2f}x")


if __name__ == "__main__":
    main()
