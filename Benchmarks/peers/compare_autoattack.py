#!/usr/bin/env python3
"""Robust accuracy and wall time of APGD-CE, APGD-T, Square and AutoAttack: torchattacks on PyTorch
CPU against `bulwark attack`, on the same model file, the same first N test images and the same ε.

    Benchmarks/peers/setup.sh                  # once: PyTorch + torchattacks in Benchmarks/peers/.venv
    swift build -c release                     # in the repository root (for the Bulwark column)
    Benchmarks/peers/.venv/bin/python Benchmarks/peers/compare_autoattack.py MODEL.safetensors \\
        [--eps 0.1] [--norm linf|l2] [--n 1000] [--threads 2] [--batch 500] \\
        [--attacks apgd-ce,apgd-t,square,autoattack] [--skip-bulwark | --skip-torch] [--out result.json]

torchattacks side (each attack run separately, seed 0):
    mi-fgsm        MIFGSM(alpha=eps/10, steps=10, decay=1.0)
    apgd-ce        APGD(loss='ce', steps=100, n_restarts=1, rho=.75)
    apgd-t         APGDT(steps=100, n_restarts=1, n_classes=10)          (9 target classes)
    fab-t          FAB(steps=100, n_restarts=1, multi_targeted=True)     (9 target classes)
    square         Square(n_queries=5000, n_restarts=1, p_init=.8)       (margin loss)
    autoattack     AutoAttack(version='standard', n_classes=10)
    autoattack-100 (optional) the same four-attack chain with 100 iterations for APGD-CE, APGD-T and
                   FAB-T, as in the reference implementation (fra31/auto-attack); torchattacks 3.5.1's
                   AutoAttack builds its APGD, APGD-T and FAB-T with their default steps=10.
Bulwark side (last stdout line is JSON with at least robust_accuracy, seconds, images_per_second):
    bulwark attack MODEL --attack apgd --loss ce --steps 100 ...     bulwark attack MODEL --attack apgd-t --steps 100 ...
    bulwark attack MODEL --attack fab-t --steps 100 ...              bulwark attack MODEL --attack square --queries 5000 ...
    bulwark attack MODEL --suite autoattack ...
each with --eps E --norm NORM --limit N --data-dir DIR --threads T --batch B --seed S --json. A Bulwark
attack that is missing or fails is reported as "not available" and the script goes on.

torchattacks 3.5.1's APGDT with norm='L2' uses the first example's step size for the whole batch
(a bug in its copy of the reference code), so L2 APGD-T comparisons against it are unreliable.

Robust accuracy is RobustBench's: the fraction of the N images that are classified correctly clean
AND after the attack, by a fresh forward pass on the returned examples. The returned examples are
also checked to lie in [0, 1] and within ε (max_distance in the JSON). Timing covers only the attack
calls. The MLP takes flat 784-vectors; torchattacks' APGD/Square need (N, C, H, W) images, so the
images are passed as (N, 1, 28, 28) to nn.Sequential(nn.Flatten(), model): the same function.
"""
import argparse
import hashlib
import json
import math
import os
import subprocess
import sys
import time

import torch
import torch.nn as nn
import torchattacks
from safetensors import safe_open
from safetensors.torch import load_file

from pytorch_mlp import load
from torch_eval import build

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
ATTACKS = ["mi-fgsm", "apgd-ce", "apgd-t", "fab-t", "square", "autoattack", "autoattack-100"]
DEFAULT_ATTACKS = "apgd-ce,apgd-t,square,autoattack"


def torch_attack(name, model, norm, eps, seed, n_classes):
    """The torchattacks object for one attack name (norm is 'Linf' or 'L2')."""
    if name == "mi-fgsm":
        return torchattacks.MIFGSM(model, eps=eps, alpha=eps / 10, steps=10, decay=1.0)
    if name == "apgd-ce":
        return torchattacks.APGD(model, norm=norm, eps=eps, steps=100, n_restarts=1, seed=seed, loss="ce", rho=.75)
    if name == "apgd-t":
        return torchattacks.APGDT(model, norm=norm, eps=eps, steps=100, n_restarts=1, seed=seed, n_classes=n_classes)
    if name == "fab-t":
        return torchattacks.FAB(model, norm=norm, eps=eps, steps=100, n_restarts=1, seed=seed, multi_targeted=True,
                                n_classes=n_classes)
    if name == "square":
        return torchattacks.Square(model, norm=norm, eps=eps, n_queries=5000, n_restarts=1, p_init=.8, seed=seed)
    if name == "autoattack":
        return torchattacks.AutoAttack(model, norm=norm, eps=eps, version="standard", n_classes=n_classes, seed=seed)
    if name == "autoattack-100":
        return torchattacks.MultiAttack([
            torchattacks.APGD(model, norm=norm, eps=eps, steps=100, n_restarts=1, seed=seed, loss="ce"),
            torchattacks.APGDT(model, norm=norm, eps=eps, steps=100, n_restarts=1, seed=seed, n_classes=n_classes),
            torchattacks.FAB(model, norm=norm, eps=eps, steps=100, n_restarts=1, seed=seed, multi_targeted=True,
                             n_classes=n_classes),
            torchattacks.Square(model, norm=norm, eps=eps, n_queries=5000, n_restarts=1, seed=seed),
        ])
    raise ValueError(f"unknown attack {name}")


def bulwark_arguments(name):
    """The attack-specific part of the `bulwark attack` command line."""
    return {
        "mi-fgsm": ["--attack", "mi-fgsm", "--steps", "10"],
        "apgd-ce": ["--attack", "apgd", "--loss", "ce", "--steps", "100"],
        "apgd-t": ["--attack", "apgd-t", "--steps", "100"],
        "fab-t": ["--attack", "fab-t", "--steps", "100"],
        "square": ["--attack", "square", "--queries", "5000"],
        "autoattack": ["--suite", "autoattack"],
        "autoattack-100": ["--suite", "autoattack"],
    }[name]


def run_torch(name, model, x, y, clean_correct, args, norm):
    attack = torch_attack(name, model, norm, args.eps, args.seed, args.classes)
    pieces = []
    start = time.perf_counter()
    for first in range(0, len(x), args.batch):
        pieces.append(attack(x[first:first + args.batch], y[first:first + args.batch]).detach())
    seconds = time.perf_counter() - start
    adversarial = torch.cat(pieces)
    with torch.no_grad():
        adversarial_correct = model(adversarial).argmax(1) == y
    robust = clean_correct & adversarial_correct
    delta = (adversarial - x).reshape(len(x), -1)
    distance = delta.abs().amax(1) if norm == "Linf" else delta.norm(dim=1)
    return {
        "robust_accuracy": robust.float().mean().item(),
        "robust_correct": int(robust.sum()),
        "adversarial_accuracy": adversarial_correct.float().mean().item(),
        "seconds": seconds,
        "images_per_second": len(x) / seconds,
        "max_distance": distance.max().item(),
        "within_eps": bool((distance <= args.eps * (1 + 1e-5) + 1e-6).all()),
        "in_range": bool((adversarial >= 0).all() and (adversarial <= 1).all()),
    }


def run_bulwark(name, args):
    command = [args.bulwark, "attack", args.model, *bulwark_arguments(name), "--eps", str(args.eps),
               "--norm", args.norm, "--limit", str(args.n), "--data-dir", args.data_dir,
               "--threads", str(args.threads), "--batch", str(args.batch), "--seed", str(args.seed), "--json"]
    entry = {"command": " ".join(command)}
    if not os.access(args.bulwark, os.X_OK):
        return {**entry, "available": False, "reason": f"no executable at {args.bulwark}"}
    start = time.perf_counter()
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=args.timeout)
    except subprocess.TimeoutExpired:
        return {**entry, "available": False, "reason": f"timed out after {args.timeout} s"}
    wall = time.perf_counter() - start
    if result.returncode != 0:
        lines = (result.stderr or result.stdout).strip().splitlines()
        return {**entry, "available": False, "reason": f"exit {result.returncode}: {lines[-1] if lines else ''}"}
    try:
        report = json.loads(result.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        return {**entry, "available": False, "reason": "last stdout line is not JSON"}
    if "robust_accuracy" not in report:
        return {**entry, "available": False, "reason": "no robust_accuracy in the JSON", "report": report}
    return {**entry, "available": True, "robust_accuracy": report["robust_accuracy"],
            "seconds": report.get("seconds"), "images_per_second": report.get("images_per_second"),
            "process_seconds": wall, "report": report}


def sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def cell(value, form):
    return "n/a" if value is None else format(value, form)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model")
    parser.add_argument("--eps", type=float, default=0.1)
    parser.add_argument("--norm", type=str.lower, choices=["linf", "l2"], default="linf")
    parser.add_argument("--n", "--limit", dest="n", type=int, default=1000, help="first N test images")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--attacks", default=DEFAULT_ATTACKS, help=f"comma-separated subset of {','.join(ATTACKS)}")
    parser.add_argument("--skip-bulwark", action="store_true")
    parser.add_argument("--skip-torch", action="store_true")
    parser.add_argument("--timeout", type=float, default=None, help="seconds per Bulwark run (default: none)")
    parser.add_argument("--data-dir", default="/usr/share/datasets/fashion-mnist")
    parser.add_argument("--bulwark", default=os.path.join(ROOT, ".build/release/bulwark"))
    parser.add_argument("--out", help="also write the table as JSON here")
    args = parser.parse_args()
    names = [a.strip() for a in args.attacks.split(",") if a.strip()]
    unknown = [a for a in names if a not in ATTACKS]
    if unknown:
        parser.error(f"unknown attack(s) {unknown}; choose from {ATTACKS}")
    torch_norm = {"linf": "Linf", "l2": "L2"}[args.norm]

    torch.set_num_threads(args.threads)
    with safe_open(args.model, framework="pt") as f:
        network = build(f.metadata()["architecture"])
    network.load_state_dict(load_file(args.model))
    network.eval()
    x, y = load(args.data_dir, "test")
    x, y = x[:args.n].contiguous(), y[:args.n].contiguous()
    side = math.isqrt(x.shape[1])
    if side * side != x.shape[1]:
        raise SystemExit(f"{x.shape[1]} features are not a square image")
    x = x.reshape(-1, 1, side, side)
    model = nn.Sequential(nn.Flatten(), network).eval()
    with torch.no_grad():
        clean_correct = model(x).argmax(1) == y

    meta = {"model": args.model, "model_sha256": sha256(args.model), "n": len(x), "eps": args.eps,
            "norm": args.norm, "threads": args.threads, "batch": args.batch, "seed": args.seed,
            "clean_accuracy": clean_correct.float().mean().item(), "torch": torch.__version__,
            "torchattacks": torchattacks.__version__, "data_dir": args.data_dir}
    print(f"# {args.model}: n = {len(x)}, clean accuracy {meta['clean_accuracy']:.4f}, "
          f"ε = {args.eps} ({args.norm}), {args.threads} thread(s), batch {args.batch}, "
          f"torch {torch.__version__}, torchattacks {torchattacks.__version__}", file=sys.stderr, flush=True)

    rows = []
    for name in names:
        row = {"attack": name}
        if not args.skip_torch:
            row["torch"] = run_torch(name, model, x, y, clean_correct, args, torch_norm)
            print(f"# torchattacks {name}: robust accuracy {row['torch']['robust_accuracy']:.4f} "
                  f"in {row['torch']['seconds']:.1f} s", file=sys.stderr, flush=True)
        if not args.skip_bulwark:
            row["bulwark"] = run_bulwark(name, args)
            b = row["bulwark"]
            print(f"# bulwark {name}: " + (f"robust accuracy {b['robust_accuracy']:.4f} in {b['seconds']} s"
                  if b["available"] else f"not available ({b['reason']})"), file=sys.stderr, flush=True)
        t = row.get("torch")
        b = row.get("bulwark") if row.get("bulwark", {}).get("available") else None
        row["difference_pp"] = (b["robust_accuracy"] - t["robust_accuracy"]) * 100 if t and b else None
        row["time_ratio_torch_over_bulwark"] = (t["seconds"] / b["seconds"]) if t and b and b.get("seconds") else None
        rows.append(row)

    header = (f"{'attack':<15} {'torch robust':>12} {'bulwark robust':>14} {'Δ pp (B−T)':>11} "
              f"{'torch s':>9} {'bulwark s':>10} {'torch/bulwark':>13}")
    print(header)
    print("-" * len(header))
    for row in rows:
        t = row.get("torch")
        b = row.get("bulwark")
        bulwark_robust = (cell(b["robust_accuracy"], ".4f") if b["available"] else "not available") if b else "skipped"
        bulwark_seconds = (cell(b.get("seconds"), ".2f") if b["available"] else "n/a") if b else "skipped"
        print(f"{row['attack']:<15} {cell(t and t['robust_accuracy'], '.4f') if t else 'skipped':>12} "
              f"{bulwark_robust:>14} {cell(row['difference_pp'], '+.1f'):>11} "
              f"{cell(t and t['seconds'], '.2f') if t else 'skipped':>9} {bulwark_seconds:>10} "
              f"{cell(row['time_ratio_torch_over_bulwark'], '.2f'):>13}")
    if args.out:
        with open(args.out, "w") as f:
            json.dump({**meta, "rows": rows}, f, indent=2)
            f.write("\n")


if __name__ == "__main__":
    main()
