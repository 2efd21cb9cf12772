#!/usr/bin/env python3
"""Minimal L2 adversarial norms of C&W-L2, DDN and DeepFool: foolbox / torchattacks on PyTorch CPU
against `bulwark attack`, on the same model file and the same first N test images (untargeted).

    Benchmarks/peers/setup.sh                  # once: PyTorch, torchattacks, foolbox in Benchmarks/peers/.venv
    swift build -c release                     # in the repository root (for the Bulwark column)
    Benchmarks/peers/.venv/bin/python Benchmarks/peers/compare_minimal_norm.py MODEL.safetensors \\
        [--eps 1.0] [--n 1000] [--threads 2] [--batch 500] [--cw-steps 1000] [--ddn-steps 1000] \\
        [--attacks cw,ddn,deepfool,deepfool-ta] [--skip-bulwark | --skip-torch] [--out result.json]

Peer side (independent implementations; each run with torch.manual_seed(seed), in batches of --batch):
    cw           foolbox L2CarliniWagnerAttack(binary_search_steps=9, steps=S, stepsize=0.01,
                 confidence=0, initial_const=1e-3, abort_early=True)          S = --cw-steps
    ddn          foolbox DDNAttack(init_epsilon=1.0, steps=S, gamma=0.05)        S = --ddn-steps
    deepfool     foolbox L2DeepFoolAttack(steps=50, candidates=10, overshoot=0.02, loss='logits')
    deepfool-ta  torchattacks DeepFool(steps=50, overshoot=0.02)
all foolbox attacks called with epsilons=None (minimisation: no budget, no early stop).
Bulwark side (last stdout line is JSON with robust_accuracy, seconds and
minimal_norm: {"median": float|null, "curve": [{"epsilon", "robust_accuracy"}, ...]}):
    bulwark attack MODEL --attack cw --steps S --binary-search-steps 9 --learning-rate 0.01 --confidence 0 --initial-const 0.001 ...
    bulwark attack MODEL --attack ddn --steps S --gamma 0.05 --init-eps 1 ...
    bulwark attack MODEL --attack deepfool --steps 50 --overshoot 0.02 ...   (for deepfool and deepfool-ta)
each with --norm l2 --eps E --limit N --data-dir DIR --threads T --batch B --seed S --json. A Bulwark
attack that is missing or fails is reported as "not available" and the script goes on.

Per input, the peer's minimal norm is ‖x_adv − x‖₂ of the returned example if a fresh forward pass
misclassifies it, ∞ if not (not found), and 0 for inputs misclassified clean (they are attacked
too, so that batches hold the same images as Bulwark's). The median is taken over the inputs
classified correctly clean, as Bulwark takes it: the lower median (element (k − 1) // 2 of the k
sorted norms), null if it is ∞. Robust accuracy at ε ∈ {0.25, 0.5, 1, 2, 4}·EPS is RobustBench's:
the fraction of all N inputs that are correct clean AND whose minimal norm exceeds ε. "found" is the
fraction of the clean-correct inputs with a finite minimal norm. Timing covers only the attack calls.

Checked and reported as violations: returned examples outside [0, 1] or not finite, and (foolbox)
examples foolbox's own success flag calls adversarial that the fresh forward pass classifies
correctly (or the reverse). foolbox's C&W returns an all-zero image for inputs it never fooled
(its initial best_advs); such placeholders are counted as not found, not as adversarial examples.

foolbox details that matter for the comparison (foolbox 3.3.4):
  * C&W's abort_early is per batch: every ceil(S/10) steps (step % ceil(S/10) == 0, step 0 included)
    it compares the loss summed over the batch with the last checkpoint and leaves the inner loop
    unless loss <= 0.9999·previous. So results depend on --batch, and an input can stop early
    because the others stopped improving.
  * C&W minimises Σ c_i·max(0, z_y − max_{j≠y} z_j + κ) + Σ ‖x' − x̃‖₂² (squared L2, x̃ the tanh
    reconstruction of x) with Adam in tanh space, δ and Adam reset every binary-search step; an
    input counts as found in a step if argmax(z + κ·onehot(y)) ≠ y at any iterate; c ← c·10 until
    a first success, then bisection between the last failing and succeeding c.
  * DDN anneals its step size α_i = 0.01 + 0.99·(1 + cos(π i / S))/2 and rescales δ to norm ε
    (exactly, growing or shrinking) before clipping to [0, 1]; no quantisation.
  * torchattacks' DeepFool applies the overshoot to each step (x ← clip(x + 1.02·r_i)) instead of to
    the total perturbation and adds no 1e-4, so with clipping it often converges onto the decision
    boundary from the correct side (a tie, argmax = the true class) and reports the input as not
    found; foolbox's L2DeepFoolAttack (x = clip(x₀ + 1.02·Σ r_i)) is the reference formulation.
The MLP takes flat 784-vectors; images are passed as (N, 1, 28, 28) to nn.Sequential(nn.Flatten(),
model): the same function.
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

try:
    import foolbox
except ImportError:  # the torchattacks peer still runs
    foolbox = None

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
ATTACKS = ["cw", "ddn", "deepfool", "deepfool-ta"]
DEFAULT_ATTACKS = ",".join(ATTACKS)
MULTIPLES = [0.25, 0.5, 1, 2, 4]


def peer_description(name, args):
    return {
        "cw": f"foolbox L2CarliniWagnerAttack(binary_search_steps={args.binary_steps}, steps={args.cw_steps}, "
              "stepsize=0.01, confidence=0, initial_const=1e-3, abort_early=True)",
        "ddn": f"foolbox DDNAttack(init_epsilon=1.0, steps={args.ddn_steps}, gamma=0.05)",
        "deepfool": f"foolbox L2DeepFoolAttack(steps={args.deepfool_steps}, candidates=10, overshoot=0.02, "
                    "loss='logits')",
        "deepfool-ta": f"torchattacks DeepFool(steps={args.deepfool_steps}, overshoot=0.02)",
    }[name]


def peer_attack(name, model, args):
    """A function (x, y) -> (adversarial, success flag or None) for one batch."""
    if name == "deepfool-ta":
        attack = torchattacks.DeepFool(model, steps=args.deepfool_steps, overshoot=0.02)
        return lambda x, y: (attack(x, y).detach(), None)
    if foolbox is None:
        raise RuntimeError("foolbox is not installed (Benchmarks/peers/.venv/bin/pip install foolbox)")
    fmodel = foolbox.PyTorchModel(model, bounds=(0, 1))
    if name == "cw":
        attack = foolbox.attacks.L2CarliniWagnerAttack(binary_search_steps=args.binary_steps, steps=args.cw_steps,
                                                       stepsize=0.01, confidence=0, initial_const=1e-3,
                                                       abort_early=True)
    elif name == "ddn":
        attack = foolbox.attacks.DDNAttack(init_epsilon=1.0, steps=args.ddn_steps, gamma=0.05)
    elif name == "deepfool":
        attack = foolbox.attacks.L2DeepFoolAttack(steps=args.deepfool_steps, candidates=10, overshoot=0.02,
                                                  loss="logits")
    else:
        raise ValueError(f"unknown attack {name}")

    def run(x, y):
        raw, _, success = attack(fmodel, x, y, epsilons=None)
        return raw.detach(), success.detach()
    return run


def bulwark_arguments(name, args):
    """The attack-specific part of the `bulwark attack` command line."""
    return {
        "cw": ["--attack", "cw", "--steps", str(args.cw_steps), "--binary-search-steps", str(args.binary_steps),
               "--learning-rate", "0.01", "--confidence", "0", "--initial-const", "0.001"],
        "ddn": ["--attack", "ddn", "--steps", str(args.ddn_steps), "--gamma", "0.05", "--init-eps", "1"],
        "deepfool": ["--attack", "deepfool", "--steps", str(args.deepfool_steps), "--overshoot", "0.02"],
        "deepfool-ta": ["--attack", "deepfool", "--steps", str(args.deepfool_steps), "--overshoot", "0.02"],
    }[name]


def lower_median(values):
    """Element (k − 1) // 2 of the sorted values, None if empty or infinite (Bulwark's median)."""
    ordered = sorted(values)
    if not ordered:
        return None
    m = ordered[(len(ordered) - 1) // 2]
    return m if math.isfinite(m) else None


def curve(norms, clean_correct, epsilons):
    """RobustBench robust accuracy at each ε: correct clean and minimal norm > ε, over all N."""
    n = len(norms)
    return [{"epsilon": e, "robust_accuracy": sum(1 for i in range(n) if clean_correct[i] and norms[i] > e) / n}
            for e in epsilons]


def run_peer(name, model, x, y, clean_correct, args, epsilons):
    torch.manual_seed(args.seed)
    attack = peer_attack(name, model, args)
    pieces, flags = [], []
    start = time.perf_counter()
    for first in range(0, len(x), args.batch):
        adversarial, success = attack(x[first:first + args.batch], y[first:first + args.batch])
        pieces.append(adversarial)
        flags.append(success)
    seconds = time.perf_counter() - start
    adversarial = torch.cat(pieces).reshape(x.shape)
    with torch.no_grad():
        fooled = model(adversarial).argmax(1) != y
    flat = adversarial.reshape(len(x), -1)
    clean_flat = x.reshape(len(x), -1)
    finite = torch.isfinite(flat).all(1)
    in_range = finite & (flat >= 0).all(1) & (flat <= 1).all(1)
    # foolbox C&W's initial best_advs is all zeros: what it returns for inputs it never fooled.
    placeholder = (flat == 0).all(1) & ~(clean_flat == 0).all(1) if name == "cw" else torch.zeros_like(fooled)
    distance = (flat.double() - clean_flat.double()).norm(dim=1)
    norms = []
    for i in range(len(x)):
        if not clean_correct[i]:
            norms.append(0.0)
        elif fooled[i] and in_range[i] and not placeholder[i]:
            norms.append(distance[i].item())
        else:
            norms.append(math.inf)
    correct_norms = [norms[i] for i in range(len(x)) if clean_correct[i]]
    found = [v for v in correct_norms if math.isfinite(v)]
    violations = {"out_of_range_or_not_finite": int((~in_range).sum())}
    if flags[0] is not None:
        claimed = torch.cat(flags).bool()
        violations["claimed_adversarial_but_correct"] = int((claimed & ~fooled).sum())
        violations["claimed_failed_but_fooled"] = int((~claimed & fooled).sum())
    points = curve(norms, clean_correct.tolist(), epsilons)
    return {
        "attack": peer_description(name, args),
        "median": lower_median(correct_norms),
        "mean_found": sum(found) / len(found) if found else None,
        "found": len(found) / max(len(correct_norms), 1),
        "found_count": len(found),
        "clean_correct": len(correct_norms),
        "curve": points,
        "robust_accuracy": next(p["robust_accuracy"] for p in points if p["epsilon"] == args.eps),
        "seconds": seconds,
        "images_per_second": len(x) / seconds,
        "violations": violations,
        "zero_image_placeholders": int(placeholder.sum()),
        "norms": [v if math.isfinite(v) else None for v in norms],
    }


def run_bulwark(name, args, cache):
    command = [args.bulwark, "attack", args.model, *bulwark_arguments(name, args), "--norm", "l2",
               "--eps", str(args.eps), "--limit", str(args.n), "--data-dir", args.data_dir,
               "--threads", str(args.threads), "--batch", str(args.batch), "--seed", str(args.seed), "--json"]
    key = " ".join(command)
    if key in cache:
        return cache[key]
    cache[key] = _run_bulwark(command, args.timeout)
    return cache[key]


def _run_bulwark(command, timeout):
    entry = {"command": " ".join(command)}
    if not os.access(command[0], os.X_OK):
        return {**entry, "available": False, "reason": f"no executable at {command[0]}"}
    start = time.perf_counter()
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {**entry, "available": False, "reason": f"timed out after {timeout} s"}
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
    minimal = report.get("minimal_norm") or {}
    return {**entry, "available": True, "robust_accuracy": report["robust_accuracy"],
            "median": minimal.get("median"), "curve": minimal.get("curve"),
            "has_minimal_norm": "minimal_norm" in report,
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


def curve_value(points, epsilon):
    for p in points or []:
        if math.isclose(p["epsilon"], epsilon, rel_tol=1e-5, abs_tol=1e-7):
            return p["robust_accuracy"]
    return None


def print_row(row, epsilons):
    p = row.get("peer")
    b = row.get("bulwark")
    b_ok = b if b and b["available"] else None
    b_missing = "skipped" if not b else ("not available" if not b["available"] else "n/a")
    p_missing = "skipped" if not p else "n/a"
    print(f"\n== {row['attack']}: {p['attack'] if p else 'peer skipped'}")
    if b:
        print(f"   bulwark: {b['command']}" + ("" if b["available"] else f"\n   bulwark not available ({b['reason']})"))
    print(f"   {'':<22} {'peer':>10} {'bulwark':>13} {'B vs P':>9}")

    def line(label, pv, bv, form, difference=None):
        ps = cell(pv, form) if p else p_missing
        bs = cell(bv, form) if b_ok else b_missing
        print(f"   {label:<22} {ps:>10} {bs:>13} {difference or '':>9}")

    median_note = "median ‖δ‖₂ (∞→n/a)"
    line(median_note, p and p["median"], b_ok and b_ok["median"], ".4f",
         cell(row["median_difference_percent"], "+.1f") + " %" if row["median_difference_percent"] is not None else "")
    line("found (clean-correct)", p and p["found"], None, ".4f")
    line("mean ‖δ‖₂ of found", p and p["mean_found"], None, ".4f")
    for e in epsilons:
        pv = curve_value(p["curve"], e) if p else None
        bv = curve_value(b_ok["curve"], e) if b_ok else None
        difference = f"{(bv - pv) * 100:+.1f} pp" if pv is not None and bv is not None else ""
        line(f"robust acc. ε = {e:g}", pv, bv, ".4f", difference)
    line("seconds", p and p["seconds"], b_ok and b_ok["seconds"], ".2f",
         f"P/B {row['time_ratio_peer_over_bulwark']:.2f}" if row["time_ratio_peer_over_bulwark"] else "")
    if p:
        bad = {k: v for k, v in p["violations"].items() if v}
        print("   violations: " + (", ".join(f"{k} {v}" for k, v in bad.items()) if bad else "none")
              + f"  (peer found {p['found_count']} of {p['clean_correct']} clean-correct inputs"
              + (f"; {p['zero_image_placeholders']} C&W zero-image placeholders counted as not found)"
                 if p["zero_image_placeholders"] else ")"))
    if b_ok and not b_ok["has_minimal_norm"]:
        print("   bulwark JSON has no minimal_norm")



def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model")
    parser.add_argument("--eps", type=float, default=1.0, help="ε; robust accuracy at 0.25, 0.5, 1, 2, 4 × ε")
    parser.add_argument("--n", "--limit", dest="n", type=int, default=1000, help="first N test images")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cw-steps", type=int, default=1000, help="C&W Adam steps per binary-search step")
    parser.add_argument("--binary-steps", type=int, default=9, help="C&W binary-search steps")
    parser.add_argument("--ddn-steps", type=int, default=1000)
    parser.add_argument("--deepfool-steps", type=int, default=50)
    parser.add_argument("--attacks", default=DEFAULT_ATTACKS, help=f"comma-separated subset of {','.join(ATTACKS)}")
    parser.add_argument("--skip-bulwark", action="store_true")
    parser.add_argument("--skip-torch", action="store_true", help="skip the peer (foolbox/torchattacks) side")
    parser.add_argument("--timeout", type=float, default=None, help="seconds per Bulwark run (default: none)")
    parser.add_argument("--data-dir", default="/usr/share/datasets/fashion-mnist")
    parser.add_argument("--bulwark", default=os.path.join(ROOT, ".build/release/bulwark"))
    parser.add_argument("--out", help="also write the results (with per-input peer norms) as JSON here")
    args = parser.parse_args()
    names = [a.strip() for a in args.attacks.split(",") if a.strip()]
    unknown = [a for a in names if a not in ATTACKS]
    if unknown:
        parser.error(f"unknown attack(s) {unknown}; choose from {ATTACKS}")
    epsilons = [m * args.eps for m in MULTIPLES]

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
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    with torch.no_grad():
        clean_correct = model(x).argmax(1) == y

    versions = {"torch": torch.__version__, "torchattacks": torchattacks.__version__,
                "foolbox": foolbox.__version__ if foolbox else None}
    meta = {"model": args.model, "model_sha256": sha256(args.model), "n": len(x), "eps": args.eps,
            "epsilons": epsilons, "norm": "l2", "threads": args.threads, "batch": args.batch, "seed": args.seed,
            "cw_steps": args.cw_steps, "binary_steps": args.binary_steps, "ddn_steps": args.ddn_steps,
            "deepfool_steps": args.deepfool_steps,
            "clean_accuracy": clean_correct.float().mean().item(), **versions, "data_dir": args.data_dir}
    print(f"# {args.model}: n = {len(x)}, clean accuracy {meta['clean_accuracy']:.4f}, ε = {args.eps} (l2), "
          f"{args.threads} thread(s), batch {args.batch}, "
          + ", ".join(f"{k} {v}" for k, v in versions.items()), file=sys.stderr, flush=True)

    rows, cache = [], {}
    for name in names:
        row = {"attack": name}
        if not args.skip_torch:
            try:
                row["peer"] = run_peer(name, model, x, y, clean_correct, args, epsilons)
                p = row["peer"]
                print(f"# peer {name}: median {cell(p['median'], '.4f')}, found {p['found']:.4f}, robust accuracy "
                      f"{p['robust_accuracy']:.4f} at ε = {args.eps} in {p['seconds']:.1f} s",
                      file=sys.stderr, flush=True)
            except RuntimeError as error:
                print(f"# peer {name}: not available ({error})", file=sys.stderr, flush=True)
        if not args.skip_bulwark:
            row["bulwark"] = run_bulwark(name, args, cache)
            b = row["bulwark"]
            print(f"# bulwark {name}: " + (f"median {cell(b['median'], '.4f')}, robust accuracy "
                  f"{b['robust_accuracy']:.4f} in {b['seconds']} s"
                  if b["available"] else f"not available ({b['reason']})"), file=sys.stderr, flush=True)
        p = row.get("peer")
        b = row.get("bulwark") if row.get("bulwark", {}).get("available") else None
        row["median_difference_percent"] = ((b["median"] - p["median"]) / p["median"] * 100
                                            if p and b and p["median"] and b["median"] is not None else None)
        row["time_ratio_peer_over_bulwark"] = (p["seconds"] / b["seconds"]) if p and b and b.get("seconds") else None
        rows.append(row)

    print(f"# minimal L2 norms, n = {len(x)}, clean accuracy {meta['clean_accuracy']:.4f}; "
          f"B vs P: median (B − P)/P, robust accuracy B − P")
    for row in rows:
        print_row(row, epsilons)
    if args.out:
        with open(args.out, "w") as f:
            json.dump({**meta, "rows": rows}, f, indent=2)
            f.write("\n")


if __name__ == "__main__":
    main()
