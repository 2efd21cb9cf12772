#!/usr/bin/env python3
"""Wall time of LiRA shadow-model training (Carlini et al. 2022) in PyTorch eager on the CPU: the
PyTorch side of a timing comparison with Bulwark's membership-inference shadow models, same work.

    Benchmarks/peers/setup.sh                  # once: PyTorch in Benchmarks/peers/.venv
    Benchmarks/peers/.venv/bin/python Benchmarks/peers/shadow_models_torch.py \\
        [--pool 60000] [--models 16] [--epochs 5] [--threads 2] [--seed 0] [--quick]

Work: the pool is the first --pool examples of the Fashion-MNIST training set (pixels in [0, 1],
flattened to 784). Model i trains on exactly floor(pool / 2) of them: the first half of a permutation
of the pool drawn from numpy's default_rng(seed + i), which also draws each epoch's order. Each model
is a 784-256-256-10 ReLU MLP (PyTorch default init, torch.manual_seed(seed + i)), trained with Adam
(lr 1e-3, betas 0.9/0.999, eps 1e-8) on plain cross-entropy, batch 128 (last batch smaller), float32,
reshuffled every epoch. Scoring: every model's logits on the whole pool (batch 4096, no_grad), which
LiRA needs for its per-example in/out distributions.

Timing (time.perf_counter): data is loaded into float32 tensors and the models are built before any
clock starts; train_seconds covers the training of all models (shuffling included), score_seconds the
scoring pass. mean_test_accuracy (over models, on the 10,000 test images) is computed after timing.
--quick (pool 4000, 2 models, 1 epoch) is a smoke run. Prints one JSON line. Not run in CI.
"""
import argparse
import json
import time

import numpy as np
import torch
import torch.nn as nn

from pytorch_mlp import load


def mlp():
    return nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 10))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--pool", type=int, default=60000)
    parser.add_argument("--models", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--score-batch", type=int, default=4096)
    parser.add_argument("--data-dir", default="/usr/share/datasets/fashion-mnist")
    parser.add_argument("--quick", action="store_true", help="smoke run: pool 4000, 2 models, 1 epoch")
    args = parser.parse_args()
    if args.quick:
        args.pool, args.models, args.epochs = 4000, 2, 1

    torch.set_num_threads(args.threads)
    x_train, y_train = load(args.data_dir, "train")
    if not 2 <= args.pool <= len(x_train):
        parser.error(f"--pool must be between 2 and {len(x_train)}")
    x, y = x_train[:args.pool].contiguous(), y_train[:args.pool].contiguous()
    x_test, y_test = load(args.data_dir, "test")
    half = args.pool // 2

    # Per model: its generator, its training half (indices into the pool) and its freshly built model.
    rngs = [np.random.default_rng(args.seed + i) for i in range(args.models)]
    subsets = [torch.from_numpy(rng.permutation(args.pool)[:half]) for rng in rngs]
    models = []
    for i in range(args.models):
        torch.manual_seed(args.seed + i)
        models.append(mlp())
    loss_fn = nn.CrossEntropyLoss()

    start = time.perf_counter()
    for model, subset, rng in zip(models, subsets, rngs):
        model.train()
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.9, 0.999), eps=1e-8)
        for _ in range(args.epochs):
            order = subset[torch.from_numpy(rng.permutation(half))]
            for first in range(0, half, args.batch):
                index = order[first:first + args.batch]
                optimizer.zero_grad(set_to_none=True)
                loss = loss_fn(model(x[index]), y[index])
                loss.backward()
                optimizer.step()
    train_seconds = time.perf_counter() - start

    logits = torch.empty(args.models, args.pool, 10)
    start = time.perf_counter()
    with torch.no_grad():
        for i, model in enumerate(models):
            model.eval()
            for first in range(0, args.pool, args.score_batch):
                logits[i, first:first + args.score_batch] = model(x[first:first + args.score_batch])
    score_seconds = time.perf_counter() - start

    with torch.no_grad():
        accuracies = [(model(x_test).argmax(1) == y_test).float().mean().item() for model in models]
    print(json.dumps({"framework": "pytorch", "models": args.models, "pool": args.pool, "epochs": args.epochs,
                      "threads": args.threads, "train_seconds": train_seconds, "score_seconds": score_seconds,
                      "seconds_per_model": train_seconds / args.models,
                      "mean_test_accuracy": sum(accuracies) / len(accuracies)}), flush=True)


if __name__ == "__main__":
    main()
