#!/usr/bin/env python3
"""The same recipe as `bulwark train` in PyTorch eager mode on the CPU, for timing comparisons.

784-256-256-10 ReLU MLP, Adam (lr 1e-3), batch 128, cross-entropy, on Fashion-MNIST with the first
54,000 examples of a seeded 90/10 split. The data is held in one tensor and batches are gathered by
index (faster than a DataLoader), so PyTorch is measured at its best eager speed.

    python3 pytorch_mlp.py --data-dir /usr/share/datasets/fashion-mnist --epochs 5 --threads 2 [--save model.safetensors]

Prints one JSON object per epoch ({"epoch", "seconds", "loss", "train_accuracy"}) and a summary with
the test accuracy.
"""
import argparse
import gzip
import json
import os
import struct
import time

import numpy as np
import torch
import torch.nn as nn


def read_idx(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    rank = data[3]
    dims = struct.unpack(f">{rank}I", data[4:4 + 4 * rank])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * rank).reshape(dims)


def load(directory, split):
    prefix = "train" if split == "train" else "t10k"
    def find(kind, rank):
        base = os.path.join(directory, f"{prefix}-{kind}-idx{rank}-ubyte")
        return base + ".gz" if os.path.exists(base + ".gz") else base
    images = read_idx(find("images", 3)).reshape(-1, 784).astype(np.float32) / 255.0
    labels = read_idx(find("labels", 1)).astype(np.int64)
    return torch.from_numpy(images), torch.from_numpy(labels)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--data-dir", default="/usr/share/datasets/fashion-mnist")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--train-examples", type=int, default=54000)
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    x, y = load(args.data_dir, "train")
    perm = torch.randperm(len(x))
    x, y = x[perm[:args.train_examples]].contiguous(), y[perm[:args.train_examples]].contiguous()
    x_test, y_test = load(args.data_dir, "test")

    model = nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 10))
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    loss_fn = nn.CrossEntropyLoss()
    n = len(x)
    for epoch in range(1, args.epochs + 1):
        model.train()
        start = time.perf_counter()
        order = torch.randperm(n)
        total_loss, correct = 0.0, 0
        for first in range(0, n, args.batch):
            index = order[first:first + args.batch]
            xb, yb = x[index], y[index]
            optimizer.zero_grad(set_to_none=True)
            logits = model(xb)
            loss = loss_fn(logits, yb)
            loss.backward()
            optimizer.step()
            total_loss += loss.item() * len(index)
            correct += (logits.argmax(1) == yb).sum().item()
        seconds = time.perf_counter() - start
        print(json.dumps({"epoch": epoch, "seconds": seconds, "loss": total_loss / n,
                          "train_accuracy": correct / n, "samples_per_second": n / seconds}), flush=True)
    model.eval()
    with torch.no_grad():
        accuracy = (model(x_test).argmax(1) == y_test).float().mean().item()
    print(json.dumps({"type": "summary", "test_accuracy": accuracy, "n": len(x_test),
                      "torch": torch.__version__, "threads": torch.get_num_threads()}), flush=True)


if __name__ == "__main__":
    main()
