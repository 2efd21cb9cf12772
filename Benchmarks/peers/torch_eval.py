#!/usr/bin/env python3
"""Load a Bulwark model file into PyTorch with no conversion and measure its test accuracy.

    python3 torch_eval.py MODEL.safetensors [--data-dir /usr/share/datasets/fashion-mnist]

Builds the torch.nn.Sequential described by the file's `architecture` metadata, then calls
`model.load_state_dict(safetensors.torch.load_file(path))` (strict: every key and shape must match).
"""
import argparse
import json

import torch
import torch.nn as nn
from safetensors import safe_open
from safetensors.torch import load_file

from pytorch_mlp import load


def build(architecture):
    modules = []
    for layer in json.loads(architecture):
        kind = layer["type"]
        if kind == "dense":
            modules.append(nn.Linear(layer["in"], layer["out"]))
        elif kind == "relu":
            modules.append(nn.ReLU())
        elif kind == "leaky_relu":
            modules.append(nn.LeakyReLU(layer["slope"]))
        elif kind == "tanh":
            modules.append(nn.Tanh())
        elif kind == "sigmoid":
            modules.append(nn.Sigmoid())
        elif kind == "dropout":
            modules.append(nn.Dropout(layer["p"]))
        else:
            raise ValueError(f"unknown layer type {kind}")
    return nn.Sequential(*modules)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("model")
    parser.add_argument("--data-dir", default="/usr/share/datasets/fashion-mnist")
    args = parser.parse_args()
    with safe_open(args.model, framework="pt") as f:
        metadata = f.metadata()
    model = build(metadata["architecture"])
    model.load_state_dict(load_file(args.model))  # strict=True by default
    model.eval()
    x, y = load(args.data_dir, "test")
    with torch.no_grad():
        correct = (model(x).argmax(1) == y).sum().item()
    print(json.dumps({"model": args.model, "torch": str(model), "accuracy": correct / len(y), "n": len(y),
                      "bulwark_test_accuracy": float(metadata.get("test_accuracy", "nan"))}))


if __name__ == "__main__":
    main()
