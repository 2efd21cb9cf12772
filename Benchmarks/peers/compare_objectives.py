#!/usr/bin/env python3
"""Bulwark's training objectives against independent PyTorch implementations: the same initial weights,
the same batch, one (or a few) full-batch SGD steps; the loss and the parameter update are compared.

    Benchmarks/peers/setup.sh          # once: .venv-lirpa (auto_LiRPA 0.3 on torch 1.12), which also has
                                       # everything the other objectives need (plain torch, safetensors)
    swift build -c release             # .build/release/bulwark, with `bulwark train --from`
    Benchmarks/peers/.venv-lirpa/bin/python Benchmarks/peers/compare_objectives.py \\
        [--objectives ibp,crown-ibp,trades,fgsm-rs,n-fgsm,pgd,pgd-large-step] [--inits standard,fresh] \\
        [--n 512] [--torch-seeds 8] [--bulwark-seeds 4] [--threads 1] [--backend auto|lirpa|own] \\
        [--crosscheck] [--keep DIR] [--out summary.json]

It runs in plain Benchmarks/peers/.venv (no auto_LiRPA) too: the certified objectives then use the own PyTorch
IBP / CROWN-IBP below (--backend own); --crosscheck runs both where both exist (they agree to ~1e-16). About
1.5-2 minutes on one thread (N = 512, 784-256-256-10, both inits, all objectives).

Set-up (identical for both sides):
  * Data: the first N Fashion-MNIST training images (pixels uint8 / 255 in Float32) and labels. Bulwark:
    `--limit N --val-split 0 --batch N`, so each epoch is exactly one SGD step on those N examples (the order
    within the batch does not change the mean gradient); `--robust-eval-n 0` (there is no held-out split).
  * Initial weights: a 784-256-256-10 ReLU MLP written to INIT.safetensors (PyTorch nn.Sequential keys and
    Bulwark's metadata), given to Bulwark with `--from INIT --allow-unverified`. Inits: "standard" (the weights of
    models/mlp-standard.safetensors, a trained model: confident, with large IBP bounds) and "fresh"
    (torch.manual_seed(0), nn.Linear's default initialisation).
  * Optimiser: plain SGD, lr 0.05 (no momentum, no weight decay), `--optimizer sgd --lr 0.05`.
  * Bulwark's "loss" of epoch e is the mean loss at the weights before that epoch's step; the torch side reports
    the same. The update U is the final weights minus the initial ones.

Deterministic objectives (ε = 0.1). The reference runs in Float64 (--dtype) from the Float32 weights:
  ibp        `--certified ibp --warmup-epochs 0 --ramp-epochs 0 --final-kappa 0.5`, 2 epochs (two steps at full ε,
             κ = 0.5). Gowal et al. 2018: L = κ·CE(z, y) + (1 − κ)·CE(ẑ, y), ẑ_y = 0, ẑ_j = −lb(z_y − z_j) over the
             box [x − ε, x + ε] ∩ [0, 1], the last layer folded into the margins (auto_LiRPA's IBP with C).
  crown-ibp  `--certified crown-ibp --warmup-epochs 0 --ramp-epochs 3 --final-kappa 0.5`, 3 epochs. Schedule (Bulwark's
             CertifiedTrainingSchedule and IntervalBoundObjective.beginStep, recomputed here in Float32): at step s,
             progress = clamp(s / ramp, 0, 1), ε = ε_train·progress, κ = 1 − (1 − κ_final)·progress, β = 1 − ε/ε_train
             (0 while ε = 0), so the steps run at (ε, κ, β) = (0, 1, –), (ε/3, 5/6, 2/3), (2ε/3, 2/3, 1/3). Zhang et al.
             2020: lb = β·lb_CROWN-IBP + (1 − β)·lb_IBP, auto_LiRPA's 'CROWN-IBP' (IBP intermediate boxes, one CROWN
             back-substitution, the adaptive lower ReLU slope) and 'IBP', differentiated by autograd.
  Every epoch's loss and the final weights must agree to Float32 rounding: the largest relative loss difference
  over the epochs ≤ --loss-rtol (1e-5) and ‖U_bulwark − U_torch‖/‖U_torch‖ ≤ --update-rtol (1e-4); also reported:
  max |W_bulwark − W_torch| and, as "floor", what rounding the reference's final weights to Float32 alone gives.

Random-start objectives (ε = 0.1). Each has a reference (the paper's algorithm as its official code runs it, in
Float64 so that Float32 cancellation does not blur it) and diagnostic variants (plausible readings or mistakes):
  trades     `--trades-beta 6 --train-steps 10 --train-step-size 0.025`. Zhang et al. 2019 (yaodongyu/TRADES, trades.py,
             written here from its definition): x' = x + 0.001·N(0, 1) (not clamped), 10 times x' ← clip_[0,1](clip_ε-ball(
             x' + α·sign ∇ Σ KL(p(x) ‖ p(x')))) in eval mode, then L = CE(f(x), y) + β·(1/B)·Σ KL(p(x) ‖ p(x')),
             differentiated through both predictions. Variants: start clamped to [0, 1]; Float32; p(x) detached in the KL.
  fgsm-rs    `--adversarial fgsm-rs` (defaults α = 1.25ε, noise ±ε). Wong et al. 2020 (locuslab/fast_adversarial):
             δ ~ U(−ε, ε) clamped so x + δ ∈ [0, 1]; δ ← clip_ε(δ + α·sign ∇CE); x + δ clamped to [0, 1]; CE(f(x + δ)).
             Variants: Float32 autograd; Float32 with ∂CE/∂z = p − e_y rounded as Bulwark's SoftmaxCrossEntropy
             computes it; no projection onto the ε-ball.
  n-fgsm     `--adversarial n-fgsm` (defaults α = ε, noise ±2ε). de Jorge et al. 2022 (pdejorge/N-FGSM, train.py):
             η ~ U(−2ε, 2ε) clamped so x + η ∈ [0, 1]; δ = η + α·sign ∇CE(f(x + η)); x + δ clamped to [0, 1], no
             ε-ball clipping (the official --clip −1 default). Variants: as fgsm-rs, and clipped to the ε-ball.
  pgd        `--adversarial pgd --train-steps 7 --train-step-size 0.025` (mix 1, random start). Madry et al. 2018
             (MadryLab/mnist_challenge, pgd_attack.py at 928fff5): x' = clip_[0,1](x + U(−ε, ε)), 7 times x' ←
             clip_[0,1](clip_ε-ball(x' + α·sign ∇CE)), the LAST iterate trained on. Variants: each input's highest-CE
             iterate of steps 1..7 (Bulwark's documented rule); the start not clamped (the earlier commit 6f91f83);
             Float32 autograd.
  pgd-large-step  the same with `--train-step-size 0.1` (α = ε): iterates oscillate, so the last and the
             highest-CE iterate differ measurably (at α = ε/4 they do not).
  Bulwark's and PyTorch's random draws differ, so compared are (a) the loss: Bulwark's mean over --bulwark-seeds
  runs against the reference's mean over --torch-seeds runs, within 3 standard errors + 1e-4 relative; (b) the
  cosine similarity between Bulwark's update and the reference's, cos(B, T), against the noise floor: the cosines
  between reference runs with different seeds, cos(T, T'). A match needs (a) and mean cos(B, T) ≥ min cos(T, T').
  For every variant V the details give its loss, cos(B, V), cos(T, V), whether V is distinguishable from the
  reference at all (by loss or by cos(T, V) below the noise floor) and which computation Bulwark is closest to
  (its loss within tolerance first, then the highest mean cosine): a mismatch comes with its likely cause.

Output: the table (objective, init, loss Bulwark, loss torch, rel. diff, weights or update comparison, verdict),
details per row, and a JSON summary (--out, with every Bulwark command). Exit status 0 if every row matches,
1 otherwise.
"""
import argparse
import contextlib
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import load_file, save_file

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
from pytorch_mlp import load  # noqa: E402  (Fashion-MNIST IDX loader, pixels / 255 in Float32)
from compare_certification import Region, ibp, resolve_backend, specification  # noqa: E402  (the L∞ box, IBP with C)

KEYS = ["0.weight", "0.bias", "2.weight", "2.bias", "4.weight", "4.bias"]
WIDTHS = [784, 256, 256, 10]
EPS = "0.1"            # --train-eps, as Bulwark parses it (Float32)
LR = "0.05"            # --lr
F32 = np.float32


# ---------------------------------------------------------------------------------------------------------
# Models and files
# ---------------------------------------------------------------------------------------------------------

def architecture_metadata():
    """Bulwark's metadata for a 784-256-256-10 ReLU MLP (the four entries every model file carries)."""
    layers = []
    for i in range(len(WIDTHS) - 1):
        layers.append({"type": "dense", "in": WIDTHS[i], "out": WIDTHS[i + 1]})
        if i < len(WIDTHS) - 2:
            layers.append({"type": "relu"})
    torch_text = "nn.Sequential(" + ", ".join(
        f"nn.Linear({WIDTHS[i]}, {WIDTHS[i + 1]})" + (", nn.ReLU()" if i < len(WIDTHS) - 2 else "")
        for i in range(len(WIDTHS) - 1)) + ")"
    return {"format": "bulwark-model/1", "architecture": json.dumps(layers, separators=(",", ":")),
            "spec": "-".join(map(str, WIDTHS)), "torch": torch_text}


def initial_state(kind):
    """The initial weights (Float32 tensors under nn.Sequential keys)."""
    if kind == "standard":
        path = os.path.join(ROOT, "models", "mlp-standard.safetensors")
        with safe_open(path, framework="pt") as f:
            if f.metadata().get("spec") != "784-256-256-10":
                raise SystemExit(f"{path} is not a 784-256-256-10 model")
        state = load_file(path)
    elif kind == "fresh":
        torch.manual_seed(0)
        model = mlp(None, torch.float32)
        state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    else:
        raise SystemExit(f"unknown init '{kind}' (standard, fresh)")
    return {k: state[k].to(torch.float32).contiguous() for k in KEYS}


def mlp(state, dtype):
    model = nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 10)).to(dtype)
    if state is not None:
        model.load_state_dict({k: v.to(dtype) for k, v in state.items()})
    return model


def flat(state, dtype=torch.float64):
    return torch.cat([state[k].reshape(-1).to(dtype) for k in KEYS])


def cosine(a, b):
    return float(torch.dot(a, b) / (a.norm() * b.norm()))


# ---------------------------------------------------------------------------------------------------------
# Bulwark
# ---------------------------------------------------------------------------------------------------------

BULWARK_FLAGS = {
    "ibp": ["--certified", "ibp", "--train-eps", EPS, "--warmup-epochs", "0", "--ramp-epochs", "0", "--final-kappa", "0.5"],
    "crown-ibp": ["--certified", "crown-ibp", "--train-eps", EPS, "--warmup-epochs", "0", "--ramp-epochs", "{ramp}",
                  "--final-kappa", "0.5"],
    "trades": ["--trades-beta", "6", "--train-eps", EPS, "--train-steps", "10", "--train-step-size", "0.025"],
    "fgsm-rs": ["--adversarial", "fgsm-rs", "--train-eps", EPS],
    "n-fgsm": ["--adversarial", "n-fgsm", "--train-eps", EPS],
    "pgd": ["--adversarial", "pgd", "--train-eps", EPS, "--train-steps", "7", "--train-step-size", "0.025"],
    "pgd-large-step": ["--adversarial", "pgd", "--train-eps", EPS, "--train-steps", "7", "--train-step-size", "0.1"],
}


def bulwark_command(args, objective, init_path, out_path, epochs, seed):
    flags = [f.format(ramp=args.crown_epochs) for f in BULWARK_FLAGS[objective]]
    return [args.bulwark, "train", "--from", init_path, "--allow-unverified", "--data-dir", args.data_dir,
            "--limit", str(args.n), "--val-split", "0", "--batch", str(args.n), "--optimizer", "sgd", "--lr", LR,
            "--epochs", str(epochs), "--seed", str(seed), "--threads", str(args.threads), *flags,
            "--robust-eval-n", "0", "--out", out_path, "--force", "--json"]


def run_bulwark(command, out_path):
    """(per-epoch losses, final weights, seconds)."""
    start = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        raise RuntimeError(f"bulwark exited with {result.returncode}:\n  {' '.join(command)}\n{result.stderr[-3000:]}")
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    epochs = [line for line in lines if line.get("type") != "summary"]
    if not epochs or not any(line.get("type") == "summary" for line in lines):
        raise RuntimeError(f"no epoch or summary line in bulwark's output:\n{result.stdout[-2000:]}")
    with safe_open(out_path, framework="pt") as f:
        metadata = f.metadata()
    weights = load_file(out_path)
    return [float(e["loss"]) for e in epochs], {k: weights[k] for k in KEYS}, seconds, metadata


# ---------------------------------------------------------------------------------------------------------
# Certified training: schedule, auto_LiRPA and own bounds
# ---------------------------------------------------------------------------------------------------------

def certified_schedule(step, steps_per_epoch, eps_train, warmup, ramp, final_kappa, crown):
    """CertifiedTrainingSchedule.values(step:stepsPerEpoch:) and IntervalBoundObjective.beginStep, in the
    same precisions (progress in Double, the rest in Float32)."""
    epoch = step / max(steps_per_epoch, 1)
    if ramp == 0:
        progress = 1.0 if epoch >= warmup else 0.0
    else:
        progress = min(max((epoch - warmup) / ramp, 0.0), 1.0)
    eps = F32(eps_train) * F32(progress)
    kappa = F32(1) - (F32(1) - F32(final_kappa)) * F32(progress)
    beta = (F32(1) - eps / F32(eps_train)) if (crown and eps > 0) else F32(0)
    return float(eps), float(kappa), float(beta)


class LirpaBounds:
    """Margin lower bounds from auto_LiRPA (IBP with C, and CROWN-IBP), differentiable in its parameters."""
    name = "auto_LiRPA"

    def __init__(self, model, x):
        import auto_LiRPA
        from auto_LiRPA import BoundedModule, BoundedTensor, PerturbationLpNorm
        self.version = getattr(auto_LiRPA, "__version__", "?")
        self.BoundedTensor, self.PerturbationLpNorm = BoundedTensor, PerturbationLpNorm
        self.module = BoundedModule(model, x[:1], device="cpu",
                                    bound_opts={"relu": "adaptive", "sparse_intermediate_bounds": False,
                                                "sparse_features_alpha": False})

    def parameters(self):
        return dict(self.module.named_parameters())  # auto_LiRPA maps them back to the original names

    def logits(self, x):
        return self.module(x)

    def margins(self, x, eps, c, beta):
        box = Region(x, eps, "linf")
        bounded = self.BoundedTensor(x, self.PerturbationLpNorm(norm=np.inf, eps=eps, x_L=box.lower, x_U=box.upper))
        ibp, _ = self.module.compute_bounds(x=(bounded,), C=c, method="IBP", bound_upper=False)
        if beta <= 0:
            return ibp
        crown, _ = self.module.compute_bounds(x=(bounded,), C=c, method="CROWN-IBP", bound_upper=False)
        return beta * crown + (1 - beta) * ibp


class OwnBounds:
    """IBP and CROWN-IBP written out in PyTorch (autograd gives the gradient): IBP boxes through every layer,
    the last layer folded into the margins; CROWN-IBP back-substitutes C·W_L through the ReLUs relaxed on IBP's
    boxes (upper chord u/(u−l)·(x−l), lower slope 1 if u ≥ −l else 0, not differentiated)."""
    name = "own"

    def __init__(self, model, x):
        self.model = model
        self.version = f"torch {torch.__version__}"

    def parameters(self):
        return dict(self.model.named_parameters())

    def logits(self, x):
        return self.model(x)

    def layers(self):
        return [(m.weight, m.bias) for m in self.model if isinstance(m, nn.Linear)]

    def margins(self, x, eps, c, beta):
        layers = self.layers()
        box = Region(x, eps, "linf")
        interval, boxes = ibp(layers, box, c)
        if beta <= 0:
            return interval
        w_last, b_last = layers[-1]
        a, bias = c @ w_last, c @ b_last
        for k in range(len(layers) - 2, -1, -1):
            low, high = boxes[k]
            active, unstable = low >= 0, (low < 0) & (high > 0)
            one, zero = torch.ones_like(low), torch.zeros_like(low)
            width = torch.where(unstable, high - low, one)
            slope_up = torch.where(active, one, torch.where(unstable, high / width, zero))
            intercept_up = torch.where(unstable, -slope_up * low, zero)
            slope_low = torch.where(active, one, torch.where(unstable & (high >= -low), one, zero)).detach()
            positive, negative = a.clamp(min=0), a.clamp(max=0)
            bias = bias + torch.einsum("bsh,bh->bs", negative, intercept_up)
            a = positive * slope_low.unsqueeze(1) + negative * slope_up.unsqueeze(1)
            w, b = layers[k]
            bias = bias + a @ b
            a = a @ w
        return beta * box.concretize_lower(a, bias) + (1 - beta) * interval


@contextlib.contextmanager
def default_dtype(dtype):
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)


def certified_reference(backend, state, x, y, epochs, crown, ramp, dtype, lr):
    """Per-epoch losses and final weights of `epochs` full-batch SGD steps of (CROWN-)IBP training."""
    with default_dtype(dtype):
        model = mlp(state, dtype)
        x = x.to(dtype)
        bounds = (LirpaBounds if backend == "lirpa" else OwnBounds)(model, x)
        params = bounds.parameters()
        if sorted(params) != sorted(KEYS):
            raise RuntimeError(f"unexpected parameter names {sorted(params)}")
        c, _ = specification(y, 10, dtype)
        losses, schedule = [], []
        for step in range(epochs):
            eps, kappa, beta = certified_schedule(step, 1, float(F32(EPS)), 0.0, ramp, 0.5, crown)
            schedule.append({"eps": eps, "kappa": kappa, "beta": beta})
            clean = F.cross_entropy(bounds.logits(x), y)
            loss = clean
            if eps > 0 and kappa < 1:
                lb = bounds.margins(x, eps, c, beta)
                padded = torch.cat([torch.zeros(lb.shape[0], 1, dtype=dtype), -lb], dim=1)
                robust = F.cross_entropy(padded, torch.zeros(lb.shape[0], dtype=torch.long))
                loss = kappa * clean + (1 - kappa) * robust
            losses.append(loss.item())
            names = list(params)
            grads = torch.autograd.grad(loss, [params[k] for k in names])
            with torch.no_grad():
                for k, g in zip(names, grads):
                    params[k].sub_(lr * g)
        final = {k: params[k].detach().clone() for k in KEYS}
    return losses, final, schedule, f"{bounds.name} {bounds.version}"


# ---------------------------------------------------------------------------------------------------------
# Random-start objectives
# ---------------------------------------------------------------------------------------------------------

def sgd_step(model, loss, lr):
    params = dict(model.named_parameters())
    grads = torch.autograd.grad(loss, [params[k] for k in KEYS])
    with torch.no_grad():
        for k, g in zip(KEYS, grads):
            params[k].sub_(lr * g)
    return {k: params[k].detach().clone() for k in KEYS}


def trades(model, x, y, eps, lr, beta=6.0, steps=10, step_size=0.025, detach_clean=False, clamp_start=False):
    """TRADES (Zhang et al. 2019) as defined by the paper and yaodongyu/TRADES (trades_loss)."""
    model.eval()
    with torch.no_grad():
        p_clean = F.softmax(model(x), dim=1)
    x_adv = x + 0.001 * torch.randn_like(x)  # the official start is not clamped to [0, 1]
    if clamp_start:
        x_adv = x_adv.clamp(0.0, 1.0)
    for _ in range(steps):
        x_adv.requires_grad_(True)
        log_q = F.log_softmax(model(x_adv), dim=1)
        kl = (p_clean * (torch.log(p_clean) - log_q)).sum()  # KLDivLoss(size_average=False)(log q, p)
        (grad,) = torch.autograd.grad(kl, x_adv)
        x_adv = x_adv.detach() + step_size * grad.sign()
        x_adv = torch.min(torch.max(x_adv, x - eps), x + eps).clamp(0.0, 1.0)
    model.train()
    logits = model(x)
    log_p = F.log_softmax(logits, dim=1)
    if detach_clean:
        log_p = log_p.detach()
    log_q = F.log_softmax(model(x_adv), dim=1)
    robust = (log_p.exp() * (log_p - log_q)).sum() / len(x)
    loss = F.cross_entropy(logits, y) + beta * robust
    return loss.item(), sgd_step(model, loss, lr)


def rounded_ce_gradient(z, y):
    """∂CE/∂z as Bulwark's SoftmaxCrossEntropy.lossAndGradient computes it: p_j = exp(z_j − lse) in the logits'
    precision, then p − e_y (so p_y − 1 is 0 once p_y rounds to 1)."""
    m = z.max(dim=1, keepdim=True).values
    total = torch.zeros_like(m)
    for j in range(z.shape[1]):  # sequential sum, as the Swift loop
        total = total + torch.exp(z[:, j:j + 1] - m)
    lse = m + torch.log(total)
    return torch.exp(z - lse) - F.one_hot(y, z.shape[1]).to(z.dtype)


def single_step(model, x, y, eps, lr, noise, alpha, project, bulwark_rounding=False):
    """FGSM-RS (noise ε, α = 1.25ε, project) and N-FGSM (noise 2ε, α = ε, no projection)."""
    delta = torch.empty_like(x).uniform_(-noise, noise)
    delta = torch.max(torch.min(delta, 1 - x), -x)  # x + δ in [0, 1]
    delta.requires_grad_(True)
    logits = model(x + delta)
    if bulwark_rounding:
        (grad,) = torch.autograd.grad(logits, delta, grad_outputs=rounded_ce_gradient(logits.detach(), y))
    else:
        (grad,) = torch.autograd.grad(F.cross_entropy(logits, y), delta)
    delta = delta.detach() + alpha * grad.sign()
    if project:
        delta = delta.clamp(-eps, eps)
    delta = torch.max(torch.min(delta, 1 - x), -x)
    loss = F.cross_entropy(model(x + delta), y)
    return loss.item(), sgd_step(model, loss, lr)


def pgd(model, x, y, eps, lr, steps=7, alpha=0.025, best=False, clamp_start=False):
    """Madry et al.'s PGD training batch: random start U(−ε, ε) (clamped to [0, 1] with clamp_start, as
    MadryLab/mnist_challenge's pgd_attack.py at 928fff5; an earlier commit, 6f91f83, did not clamp it), `steps`
    signed steps, each projected onto the ε-ball and [0, 1]; the last iterate, or with best=True each input's
    highest-CE iterate among steps 1..k."""
    x_adv = x + torch.empty_like(x).uniform_(-eps, eps)
    if clamp_start:
        x_adv = x_adv.clamp(0.0, 1.0)
    chosen, chosen_loss = x_adv.clone(), torch.full((len(x),), -math.inf, dtype=x.dtype)
    for _ in range(steps):
        x_adv.requires_grad_(True)
        loss = F.cross_entropy(model(x_adv), y, reduction="sum")
        (grad,) = torch.autograd.grad(loss, x_adv)
        x_adv = x_adv.detach() + alpha * grad.sign()
        x_adv = torch.min(torch.max(x_adv, x - eps), x + eps).clamp(0.0, 1.0)
        if best:
            with torch.no_grad():
                per = F.cross_entropy(model(x_adv), y, reduction="none")
                better = per > chosen_loss
                chosen[better], chosen_loss[better] = x_adv[better], per[better]
    final = chosen if best else x_adv
    loss = F.cross_entropy(model(final), y)
    return loss.item(), sgd_step(model, loss, lr)


F64T, F32T = torch.float64, torch.float32


def pgd_variants(eps, alpha):
    return [
        ("PGD-7, start clamped, last iterate (Madry et al., mnist_challenge), Float64", F64T,
         lambda m, x, y, lr: pgd(m, x, y, eps, lr, alpha=alpha, clamp_start=True)),
        ("highest-CE iterate of steps 1..7 (Bulwark's documented rule)", F64T,
         lambda m, x, y, lr: pgd(m, x, y, eps, lr, alpha=alpha, best=True, clamp_start=True)),
        ("start not clamped (mnist_challenge before 928fff5)", F64T, lambda m, x, y, lr: pgd(m, x, y, eps, lr, alpha=alpha)),
        ("Float32 autograd (PyTorch's CE gradient)", F32T,
         lambda m, x, y, lr: pgd(m, x, y, eps, lr, alpha=alpha, clamp_start=True)),
    ]


def random_variants(eps):
    """objective → [(name, dtype, fn(model, x, y, lr) → (loss, weights))]: the reference first (the paper's
    algorithm in Float64, free of Float32 cancellation), then variants that diagnose a mismatch."""
    return {
        "trades": [
            ("TRADES (official definition), Float64", F64T, lambda m, x, y, lr: trades(m, x, y, eps, lr)),
            ("start x + 0.001·N(0, 1) clamped to [0, 1]", F64T, lambda m, x, y, lr: trades(m, x, y, eps, lr, clamp_start=True)),
            ("Float32 autograd (as the official code runs)", F32T, lambda m, x, y, lr: trades(m, x, y, eps, lr)),
            ("p(x) detached in the KL", F64T, lambda m, x, y, lr: trades(m, x, y, eps, lr, detach_clean=True)),
        ],
        "fgsm-rs": [
            ("FGSM-RS (Wong et al.), Float64", F64T, lambda m, x, y, lr: single_step(m, x, y, eps, lr, eps, 1.25 * eps, True)),
            ("Float32 autograd (PyTorch's CE gradient)", F32T,
             lambda m, x, y, lr: single_step(m, x, y, eps, lr, eps, 1.25 * eps, True)),
            ("Float32, CE gradient p − e_y rounded as Bulwark's SoftmaxCrossEntropy", F32T,
             lambda m, x, y, lr: single_step(m, x, y, eps, lr, eps, 1.25 * eps, True, bulwark_rounding=True)),
            ("no ε-ball projection", F64T, lambda m, x, y, lr: single_step(m, x, y, eps, lr, eps, 1.25 * eps, False)),
        ],
        "n-fgsm": [
            ("N-FGSM (de Jorge et al.), Float64", F64T, lambda m, x, y, lr: single_step(m, x, y, eps, lr, 2 * eps, eps, False)),
            ("Float32 autograd (PyTorch's CE gradient)", F32T, lambda m, x, y, lr: single_step(m, x, y, eps, lr, 2 * eps, eps, False)),
            ("Float32, CE gradient p − e_y rounded as Bulwark's SoftmaxCrossEntropy", F32T,
             lambda m, x, y, lr: single_step(m, x, y, eps, lr, 2 * eps, eps, False, bulwark_rounding=True)),
            ("clipped to the ε-ball", F64T, lambda m, x, y, lr: single_step(m, x, y, eps, lr, 2 * eps, eps, True)),
        ],
        "pgd": pgd_variants(eps, 0.025),
        "pgd-large-step": pgd_variants(eps, 0.1),
    }


def torch_runs(fn, dtype, state, x, y, lr, seeds):
    losses, updates = [], []
    start = flat(state)
    for seed in seeds:
        torch.manual_seed(seed)
        loss, final = fn(mlp(state, dtype), x.to(dtype), y, lr)
        losses.append(loss)
        updates.append(flat(final) - start)
    return np.array(losses), updates


def loss_bound(a, b):
    """Tolerance for the difference of the means of two loss samples: 3 standard errors + 1e-4 relative."""
    variance = b.var(ddof=1) / len(b) + (a.var(ddof=1) / len(a) if len(a) > 1 else b.var(ddof=1))
    return float(3 * math.sqrt(variance) + 1e-4 * abs(b.mean()))


def pairwise(updates):
    return [cosine(updates[i], updates[j]) for i in range(len(updates)) for j in range(i + 1, len(updates))]


def cross(a, b):
    return [cosine(u, v) for u in a for v in b]


def stats(values):
    values = np.asarray(values, dtype=np.float64)
    return {"mean": float(values.mean()), "min": float(values.min()), "max": float(values.max()),
            "sd": float(values.std(ddof=1)) if len(values) > 1 else 0.0}


# ---------------------------------------------------------------------------------------------------------

def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--objectives", default="ibp,crown-ibp,trades,fgsm-rs,n-fgsm,pgd,pgd-large-step")
    parser.add_argument("--inits", default="standard,fresh")
    parser.add_argument("--n", type=int, default=512)
    parser.add_argument("--ibp-epochs", type=int, default=2)
    parser.add_argument("--crown-epochs", type=int, default=3, help="epochs of the CROWN-IBP run (= its ramp)")
    parser.add_argument("--torch-seeds", type=int, default=8)
    parser.add_argument("--bulwark-seeds", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--backend", choices=["auto", "lirpa", "own"], default="auto")
    parser.add_argument("--crosscheck", action="store_true", help="certified: also run the other backend")
    parser.add_argument("--dtype", choices=["float64", "float32"], default="float64",
                        help="precision of the certified reference")
    parser.add_argument("--loss-rtol", type=float, default=1e-5, help="deterministic: largest relative loss difference")
    parser.add_argument("--update-rtol", type=float, default=1e-4,
                        help="deterministic: largest ‖U_bulwark − U_torch‖/‖U_torch‖")
    parser.add_argument("--data-dir", default="/usr/share/datasets/fashion-mnist")
    parser.add_argument("--bulwark", default=os.path.join(ROOT, ".build", "release", "bulwark"))
    parser.add_argument("--keep", help="keep the model files in this directory (default: a temporary one, removed)")
    parser.add_argument("--out", help="write the JSON summary here")
    args = parser.parse_args()

    objectives = [o for o in args.objectives.split(",") if o]
    for o in objectives:
        if o not in BULWARK_FLAGS:
            raise SystemExit(f"unknown objective '{o}' (known: {', '.join(BULWARK_FLAGS)})")
    if args.crown_epochs < 2:
        raise SystemExit("--crown-epochs must be ≥ 2 (step 0 of a ramp has ε = 0)")
    torch.set_num_threads(args.threads)
    backend = resolve_backend(args.backend)
    cert_dtype = torch.float64 if args.dtype == "float64" else torch.float32
    lr = float(F32(LR))
    eps = float(F32(EPS))

    images, labels = load(args.data_dir, "train")
    x, y = images[:args.n].contiguous(), labels[:args.n].contiguous()

    work = args.keep or tempfile.mkdtemp(prefix="bulwark-objectives-")
    os.makedirs(work, exist_ok=True)
    rows, details = [], []
    started = time.perf_counter()
    try:
        for init in [i for i in args.inits.split(",") if i]:
            state = initial_state(init)
            init_path = os.path.join(work, f"init-{init}.safetensors")
            save_file(state, init_path, metadata=architecture_metadata())
            start = flat(state)
            for objective in objectives:
                row = {"objective": objective, "init": init}
                if objective in ("ibp", "crown-ibp"):
                    crown = objective == "crown-ibp"
                    epochs = args.crown_epochs if crown else args.ibp_epochs
                    ramp = args.crown_epochs if crown else 0
                    out = os.path.join(work, f"{objective}-{init}.safetensors")
                    command = bulwark_command(args, objective, init_path, out, epochs, 0)
                    b_losses, b_final, seconds, metadata = run_bulwark(command, out)
                    t_losses, t_final, schedule, impl = certified_reference(backend, state, x, y, epochs, crown, ramp, cert_dtype, lr)
                    if len(b_losses) != epochs:
                        raise RuntimeError(f"bulwark reported {len(b_losses)} epochs, expected {epochs}")
                    rel = [abs(b - t) / abs(t) for b, t in zip(b_losses, t_losses)]
                    wb, wt = flat(b_final), flat(t_final)
                    ub, ut = wb - start, wt - start
                    floor = float((wt.to(torch.float32).to(torch.float64) - wt).norm() / ut.norm())
                    update_error = float((ub - ut).norm() / ut.norm())
                    row.update({
                        "kind": "deterministic", "epochs": epochs, "schedule": schedule, "reference": impl,
                        "loss_bulwark": b_losses, "loss_torch": t_losses, "loss_rel_diff": rel,
                        "max_abs_weight_diff": float((wb - wt).abs().max()),
                        "max_abs_update": float(ut.abs().max()),
                        "update_rel_error": update_error, "update_rel_error_float32_floor": floor,
                        "update_cosine": cosine(ub, ut), "bulwark_seconds": seconds,
                        "initial_model_sha256": metadata.get("initial_model_sha256"),
                        "command": " ".join(command),
                    })
                    row["match"] = bool(max(rel) <= args.loss_rtol and update_error <= args.update_rtol)
                    if args.crosscheck:
                        other = "own" if backend == "lirpa" else "lirpa"
                        try:
                            o_losses, o_final, _, o_impl = certified_reference(other, state, x, y, epochs, crown, ramp, cert_dtype, lr)
                            row["crosscheck"] = {
                                "reference": o_impl,
                                "max_loss_rel_diff": max(abs(a - b) / abs(b) for a, b in zip(o_losses, t_losses)),
                                "max_abs_weight_diff": float((flat(o_final) - wt).abs().max())}
                        except ImportError as error:
                            row["crosscheck"] = {"skipped": str(error)}
                else:
                    variants = random_variants(eps)[objective]
                    b_losses, b_updates, commands, seconds = [], [], [], 0.0
                    for seed in range(args.bulwark_seeds):
                        out = os.path.join(work, f"{objective}-{init}-seed{seed}.safetensors")
                        command = bulwark_command(args, objective, init_path, out, 1, seed)
                        losses, final, s, _ = run_bulwark(command, out)
                        b_losses.append(losses[0])
                        b_updates.append(flat(final) - start)
                        commands.append(" ".join(command))
                        seconds += s
                    b_losses = np.array(b_losses)
                    seeds = range(1000, 1000 + args.torch_seeds)
                    runs = [(name, v_dtype) + torch_runs(fn, v_dtype, state, x, y, lr, seeds) for name, v_dtype, fn in variants]
                    ref_name, _, t_losses, t_updates = runs[0]
                    floor = stats(pairwise(t_updates))
                    bt = stats(cross(b_updates, t_updates))
                    loss_tolerance = loss_bound(b_losses, t_losses)
                    loss_gap = abs(b_losses.mean() - t_losses.mean())
                    diagnostics = []
                    for name, v_dtype, v_losses, v_updates in runs[1:]:
                        tv = stats(cross(t_updates, v_updates))
                        diagnostics.append({
                            "variant": name, "dtype": str(v_dtype).replace("torch.", ""), "loss": stats(v_losses),
                            "cos_bulwark_variant": stats(cross(b_updates, v_updates)), "cos_reference_variant": tv,
                            "noise_floor_variant": stats(pairwise(v_updates)),
                            "bulwark_loss_within_tolerance": bool(abs(b_losses.mean() - v_losses.mean())
                                                                  <= loss_bound(b_losses, v_losses)),
                            "differs_from_reference": bool(tv["mean"] < floor["min"] or abs(v_losses.mean() - t_losses.mean())
                                                           > loss_bound(v_losses, t_losses))})
                    row.update({
                        "kind": "random", "reference": ref_name,
                        "loss_bulwark": stats(b_losses), "loss_torch": stats(t_losses),
                        "loss_rel_diff": float(loss_gap / abs(t_losses.mean())), "loss_tolerance": loss_tolerance,
                        "cos_bulwark_torch": bt, "noise_floor_torch_torch": floor,
                        "cos_bulwark_bulwark": stats(pairwise(b_updates)) if len(b_updates) > 1 else None,
                        "variants": diagnostics, "bulwark_seconds": seconds, "commands": commands,
                    })
                    row["loss_match"] = bool(loss_gap <= loss_tolerance)
                    row["update_match"] = bool(bt["mean"] >= floor["min"])
                    row["match"] = row["loss_match"] and row["update_match"]
                    # The torch computation Bulwark resembles most: its loss within tolerance first, then the highest
                    # mean cosine.
                    closest = max([{"variant": ref_name, "cos_bulwark_variant": bt,
                                    "bulwark_loss_within_tolerance": row["loss_match"]}] + diagnostics,
                                  key=lambda d: (d["bulwark_loss_within_tolerance"], d["cos_bulwark_variant"]["mean"]))
                    row["closest"] = closest["variant"]
                rows.append(row)
                print(f"# done: {objective} ({init}) in {time.perf_counter() - started:.0f} s", file=sys.stderr, flush=True)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)

    print_report(rows, args, backend)
    summary = {"n": args.n, "lr": lr, "epsilon": eps, "threads": args.threads, "backend": backend,
               "torch": torch.__version__, "torch_seeds": args.torch_seeds, "bulwark_seeds": args.bulwark_seeds,
               "seconds": time.perf_counter() - started, "rows": rows,
               "all_match": all(r["match"] for r in rows)}
    if args.out:
        with open(args.out, "w") as f:
            json.dump(summary, f, indent=1)
    print(json.dumps({k: v for k, v in summary.items() if k != "rows"}))
    sys.exit(0 if summary["all_match"] else 1)


def print_report(rows, args, backend):
    header = ["objective", "init", "loss Bulwark", "loss torch", "rel. diff", "weights / update", "match"]
    table = []
    for r in rows:
        if r["kind"] == "deterministic":
            worst = int(np.argmax(r["loss_rel_diff"]))
            table.append([r["objective"], r["init"],
                          " → ".join(f"{v:.6f}" for v in r["loss_bulwark"]),
                          " → ".join(f"{v:.6f}" for v in r["loss_torch"]),
                          f"{r['loss_rel_diff'][worst]:.1e}",
                          f"max|ΔW| {r['max_abs_weight_diff']:.1e}, ‖ΔU‖/‖U‖ {r['update_rel_error']:.1e} "
                          f"(floor {r['update_rel_error_float32_floor']:.0e})",
                          "yes" if r["match"] else "NO"])
        else:
            bt, fl = r["cos_bulwark_torch"], r["noise_floor_torch_torch"]
            table.append([r["objective"], r["init"],
                          f"{r['loss_bulwark']['mean']:.5f}±{r['loss_bulwark']['sd']:.5f}",
                          f"{r['loss_torch']['mean']:.5f}±{r['loss_torch']['sd']:.5f}",
                          f"{r['loss_rel_diff']:.1e}",
                          f"cos {bt['mean']:.4f} [{bt['min']:.4f}] vs floor {fl['mean']:.4f} [{fl['min']:.4f}, {fl['max']:.4f}]",
                          ("yes" if r["match"] else "NO" + ("" if r["loss_match"] else " (loss)")
                           + ("" if r["update_match"] else " (update)"))])
    widths = [max(len(str(row[i])) for row in table + [header]) for i in range(len(header))]
    line = lambda cells: "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths)) + " |"
    print(f"# Bulwark vs PyTorch {torch.__version__}: N = {args.n}, SGD lr {LR}, ε = {EPS}, certified reference: {backend} "
          f"({args.dtype}); random objectives: {args.bulwark_seeds} Bulwark seeds × {args.torch_seeds} torch seeds")
    print(line(header))
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in table:
        print(line(row))
    print()
    for r in rows:
        if r["kind"] == "deterministic":
            sched = ", ".join(f"(ε {s['eps']:.4g}, κ {s['kappa']:.4g}, β {s['beta']:.4g})" for s in r["schedule"])
            print(f"{r['objective']} ({r['init']}): {r['reference']}; steps {sched}; update cosine {r['update_cosine']:.8f}, "
                  f"largest update {r['max_abs_update']:.2e}; Bulwark {r['bulwark_seconds']:.1f} s")
            if "crosscheck" in r:
                print(f"    crosscheck: {r['crosscheck']}")
        else:
            bb = r["cos_bulwark_bulwark"]
            print(f"{r['objective']} ({r['init']}): reference {r['reference']}; cos(B, B') "
                  + (f"{bb['mean']:.4f} [{bb['min']:.4f}]" if bb else "–")
                  + f"; loss tolerance {r['loss_tolerance']:.1e}; closest to: {r['closest']}; Bulwark {r['bulwark_seconds']:.1f} s")
            for d in r["variants"]:
                bv, tv = d["cos_bulwark_variant"], d["cos_reference_variant"]
                print(f"    variant {d['variant']} ({d['dtype']}): loss {d['loss']['mean']:.5f}±{d['loss']['sd']:.5f}"
                      f"{'' if d['bulwark_loss_within_tolerance'] else ' (≠ Bulwark)'}, cos(B, V) {bv['mean']:.4f} "
                      f"[{bv['min']:.4f}], cos(T, V) {tv['mean']:.4f}; "
                      f"{'distinguishable from' if d['differs_from_reference'] else 'NOT distinguishable from'} the reference")

if __name__ == "__main__":
    main()
