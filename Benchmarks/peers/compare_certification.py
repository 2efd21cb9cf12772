#!/usr/bin/env python3
"""Certified accuracy of a ReLU MLP on Fashion-MNIST, computed independently of Bulwark, and (with
--bulwark-json) compared with `bulwark certify` on the same model file and the same first N test images.

    Benchmarks/peers/setup.sh          # once: .venv (PyTorch) and .venv-lirpa (auto_LiRPA 0.3 on torch 1.12)
    Benchmarks/peers/.venv-lirpa/bin/python Benchmarks/peers/compare_certification.py \\
        --model models/mlp-pgd.safetensors --eps 0.1 --norm linf --method crown --n 1000 \\
        [--backend auto|lirpa|own] [--intersect-ibp] [--tolerance 1e-4] [--batch 100] [--threads 2] \\
        [--crosscheck] [--soundness 20 --samples 2000 --pgd-steps 50] \\
        [--bulwark-json bulwark.json] [--out peer.json]

with bulwark.json from
    bulwark certify MODEL --norm linf --eps 0.1 --method crown --n 1000 --json --per-example

Bound methods (all in Float64, on the Float32 weights of the model file widened exactly):
    ibp          Interval bound propagation (Gowal et al. 2018, "On the Effectiveness of Interval Bound
                 Propagation for Training Verifiably Robust Models"), the last layer folded into the
                 margins ("elision": bounds of (C·W_L)·h + C·b_L, not differences of logit bounds).
    crown        CROWN (Zhang et al. 2018, "Efficient Neural Network Robustness Certification with General
                 Activation Functions"): back-substitution of linear bounds through every layer, every
                 intermediate pre-activation bounded by CROWN itself; for an unstable ReLU (l < 0 < u)
                 the upper line u/(u − l)·(x − l) and the adaptive lower line of slope 1 if u ≥ −l, else 0.
                 --intersect-ibp also intersects every intermediate interval with IBP's (sound, at least
                 as tight; Bulwark's CROWN may do this).
    alpha-crown  α-CROWN (Xu et al. 2021, "Fast and Complete"): auto_LiRPA's CROWN-Optimized, the
                 lower-line slopes α of every ReLU optimised from CROWN's by Adam (--alpha-iterations 20,
                 --alpha-lr 0.5, lr decay 0.98, best bound kept) for the sum of the margin lower bounds; as
                 auto_LiRPA 0.3 does when no intermediate bounds are passed, every iteration recomputes the
                 intermediate intervals with their own α's too. Slow: ~1 s per example on 2 cores.
                 auto_LiRPA backend only.

Backends:
    lirpa  auto_LiRPA (Xu et al. 2020, "Automatic Perturbation Analysis for Scalable Certified Robustness
           and Beyond"), the reference implementation, methods 'IBP', 'backward' and 'CROWN-Optimized',
           called with the specification matrix C (C = e_y − e_j, one row per j ≠ y), so the last layer is
           folded into C exactly as above. auto_LiRPA 0.3, the newest on PyPI, needs torch < 1.13 and
           numpy < 2, so it lives in its own venv, Benchmarks/peers/.venv-lirpa (Python 3.10, torch 1.12.1).
           Options set: sparse_intermediate_bounds=False (else auto_LiRPA takes IBP's interval for every
           neuron IBP proves stable and runs CROWN only on the rest, a hybrid, not plain CROWN), and
           sparse_features_alpha=False (auto_LiRPA 0.3's sparse α fails on batches with a shape error).
           Float64 needs torch.set_default_dtype(torch.float64) (0.3 casts α-CROWN's best bounds to it).
           Its adaptive lower slope is 1 iff u > −l (strict), Bulwark's and ours iff u ≥ −l: they differ
           only on exact ties.
    own    The plain PyTorch Float64 IBP and CROWN below (no α-CROWN), written from the papers for this
           script; it runs in either venv. --crosscheck runs it next to auto_LiRPA and reports the largest
           difference of the margin bounds (it should be at rounding level, ~1e-12).
    auto   lirpa if auto_LiRPA imports, else own.

Semantics (those of `bulwark certify`):
  * Input set: for L∞ the box [max(x − ε, 0), min(x + ε, 1)] (the ε-ball intersected with the pixel domain);
    for L2 the whole L2 ball of radius ε around x (no intersection with [0, 1]).
  * Specification: the margins z_y − z_j for every j ≠ y (y the true label). Their lower bounds are computed
    for every example, also those misclassified clean; the per-example worst margin bound is
    min_{j≠y} LB(z_y − z_j).
  * Certified iff clean-correct (argmax of the Float32 forward pass of the model = y) AND the worst margin
    bound > --tolerance (1e-4, Bulwark's allowance for Float32 rounding of the forward pass).
  * Certified accuracy = certified / n over the first n test images (pixels = uint8 / 255 in Float32, widened
    to Float64 for the bounds).
  * Seconds: the bound computation for all n (clean forward pass included), not data loading nor auto_LiRPA's
    one-time graph conversion (reported as setup_seconds).

Soundness self-check (--soundness K): for the first K examples, --samples points of the input set (half of
them random corners of the L∞ box / points on the L2 sphere, half uniform in the box / ball), plus the centre
and the end point of a --pgd-steps PGD attack on the worst margin; every true margin z_y − z_j must be
≥ its lower bound (minus 1e-9). Reported: violations (must be 0) and the smallest slack.

Comparison (--bulwark-json): Bulwark's per-example status is its worst margin bound > tolerance (an array
`certified` is used instead if the JSON has one); reported are the certified-accuracy difference, the number
of examples whose status differs, max and median |Δ| of the worst margin bounds, and how many of Bulwark's
bounds are tighter (larger) or looser (smaller) than ours by more than --compare-atol.

Output: human-readable lines, then the summary as one JSON line; --out writes the summary with the
per-example arrays (`margin_lower_bounds`, `clean_correct`, `certified`), in the same layout as Bulwark's JSON.
"""
import argparse
import copy
import json
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn
from safetensors import safe_open
from safetensors.torch import load_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pytorch_mlp import load  # noqa: E402  (Fashion-MNIST IDX loader, pixels / 255 in Float32)
from torch_eval import build  # noqa: E402  (nn.Sequential from the model file's `architecture`)

F64 = torch.float64


# ---------------------------------------------------------------------------------------------------------
# Model, data, specification
# ---------------------------------------------------------------------------------------------------------

def load_model(path):
    """The model file as torch.nn.Sequential (Float32, strict load), and its metadata."""
    with safe_open(path, framework="pt") as f:
        metadata = f.metadata()
    model = build(metadata["architecture"])
    model.load_state_dict(load_file(path))
    model.eval()
    return model, metadata


def affine_layers(model):
    """[(W, b)] in Float64 for a Sequential of Linear and ReLU layers (dropout is the identity at inference).
    Requires Linear, ReLU, Linear, ReLU, ..., Linear."""
    layers, expect_linear = [], True
    for module in model:
        if isinstance(module, nn.Dropout):
            continue
        if isinstance(module, nn.Linear) and expect_linear:
            layers.append((module.weight.detach().to(F64), module.bias.detach().to(F64)))
        elif isinstance(module, nn.ReLU) and not expect_linear:
            pass
        else:
            raise ValueError(f"only Linear/ReLU alternations are supported, found {module}")
        expect_linear = not expect_linear
    if expect_linear:
        raise ValueError("the network must end with a Linear layer")
    return layers


def specification(labels, classes, dtype=F64):
    """C (B × (classes−1) × classes): row i is e_y − e_j for the i-th class j ≠ y, in increasing j."""
    batch = len(labels)
    others = torch.stack([torch.tensor([j for j in range(classes) if j != int(y)]) for y in labels])
    c = torch.zeros(batch, classes - 1, classes, dtype=dtype)
    rows = torch.arange(classes - 1)
    for b in range(batch):
        c[b, rows, labels[b]] = 1.0
        c[b, rows, others[b]] = -1.0
    return c, others


class Region:
    """The input set of each example of a batch: the L∞ box [max(x−ε,0), min(x+ε,1)] or the L2 ball."""

    def __init__(self, x, eps, norm):
        self.x, self.eps, self.norm = x, eps, norm
        if norm == "linf":
            self.lower = torch.clamp(x - eps, min=0.0)
            self.upper = torch.clamp(x + eps, max=1.0)
            # Inputs outside [0, 1] (none in Fashion-MNIST) keep their own value inside the box, as Bulwark.
            self.lower, self.upper = torch.minimum(self.lower, x), torch.maximum(self.upper, x)
            self.center = (self.lower + self.upper) / 2
            self.radius = (self.upper - self.lower) / 2
        elif norm != "l2":
            raise ValueError(norm)

    def concretize_lower(self, a, bias):
        """min over the set of a·x + bias, for a (B × S × d), bias (B × S)."""
        if self.norm == "linf":
            return (torch.einsum("bsd,bd->bs", a, self.center)
                    - torch.einsum("bsd,bd->bs", a.abs(), self.radius) + bias)
        return torch.einsum("bsd,bd->bs", a, self.x) - self.eps * a.norm(dim=2) + bias


# ---------------------------------------------------------------------------------------------------------
# Own implementation: IBP and CROWN in Float64
# ---------------------------------------------------------------------------------------------------------

def first_layer_box(layer, region):
    """The exact interval of W x + b over the input set, as centre and radius (IBP and CROWN agree here)."""
    w, b = layer
    if region.norm == "linf":
        return region.center @ w.T + b, region.radius @ w.abs().T
    center = region.x @ w.T + b  # An L2 ball maps to the box W x + b ± ε‖W_i‖₂.
    return center, (region.eps * w.norm(dim=1)).expand_as(center)


def ibp(layers, region, c):
    """IBP (Gowal et al. 2018). Returns the lower bounds of C·z (B × S) and the pre-activation intervals
    [(l, u)] of every hidden layer."""
    if len(layers) == 1:
        w, b = layers[0]
        return region.concretize_lower(c @ w, c @ b), []
    center, radius = first_layer_box(layers[0], region)
    pre = []
    for k in range(1, len(layers)):
        lower, upper = center - radius, center + radius
        pre.append((lower, upper))
        lower, upper = lower.clamp(min=0), upper.clamp(min=0)
        center, radius = (upper + lower) / 2, (upper - lower) / 2
        w, b = layers[k]
        if k == len(layers) - 1:  # Elision: the last layer folded into C.
            cw = c @ w  # B × S × width
            margins = (torch.einsum("bsh,bh->bs", cw, center) - torch.einsum("bsh,bh->bs", cw.abs(), radius)
                       + c @ b)
            return margins, pre
        center, radius = center @ w.T + b, radius @ w.abs().T
    raise AssertionError("unreachable")


def relu_relaxation(lower, upper):
    """CROWN's linear bounds of ReLU on [l, u]: lower slope α (no intercept), upper slope β and intercept γ.
    Stable neurons get the exact line; for l < 0 < u: β = u/(u−l), γ = −β·l, α = 1 if u ≥ −l else 0."""
    active, unstable = lower >= 0, (lower < 0) & (upper > 0)
    one, zero = torch.ones_like(lower), torch.zeros_like(lower)
    width = torch.where(unstable, upper - lower, one)
    slope_up = torch.where(active, one, torch.where(unstable, upper / width, zero))
    intercept_up = torch.where(unstable, -slope_up * lower, zero)
    slope_low = torch.where(active, one, torch.where(unstable & (upper >= -lower), one, zero))
    return slope_low, slope_up, intercept_up


def backward_lower(layers, relaxations, region, a, k):
    """Lower bound over the region of a·z_k (z_k the output of affine layer k; a: B × S × width_k), by
    back-substitution: through affine layer i, a ← a·W_i with bias += a·b_i; through ReLU i−1, positive
    coefficients take the lower line and negative ones the upper line (bias += a⁻·γ)."""
    bias = torch.zeros(a.shape[:2], dtype=F64)
    for i in range(k, -1, -1):
        w, b = layers[i]
        bias = bias + a @ b
        a = a @ w
        if i == 0:
            break
        slope_low, slope_up, intercept_up = relaxations[i - 1]
        positive, negative = a.clamp(min=0), a.clamp(max=0)
        bias = bias + torch.einsum("bsh,bh->bs", negative, intercept_up)
        a = positive * slope_low.unsqueeze(1) + negative * slope_up.unsqueeze(1)
    return region.concretize_lower(a, bias)


def crown(layers, region, c, intersect_ibp=False):
    """CROWN (Zhang et al. 2018): every hidden pre-activation bounded by back-substitution (lower bounds of
    [I; −I]·z_k; for the first layer that is its exact interval), then the margins C·z_L. With intersect_ibp, each interval is intersected with IBP's."""
    ibp_pre = ibp(layers, region, c)[1] if intersect_ibp else None
    batch = region.x.shape[0]
    relaxations = []
    for k in range(len(layers) - 1):
        if k == 0:  # Back-substitution through one affine layer is the exact interval.
            center, radius = first_layer_box(layers[0], region)
            lower, upper = center - radius, center + radius
        else:
            width = layers[k][0].shape[0]
            eye = torch.eye(width, dtype=F64)
            a = torch.cat([eye, -eye]).unsqueeze(0).expand(batch, -1, -1)
            bounds = backward_lower(layers, relaxations, region, a, k)
            lower, upper = bounds[:, :width], -bounds[:, width:]
        if intersect_ibp:
            lower, upper = torch.maximum(lower, ibp_pre[k][0]), torch.minimum(upper, ibp_pre[k][1])
        relaxations.append(relu_relaxation(lower, upper))
    return backward_lower(layers, relaxations, region, c, len(layers) - 1)


def own_bounds(layers, region, c, method, intersect_ibp):
    if method == "ibp":
        return ibp(layers, region, c)[0]
    if method == "crown":
        return crown(layers, region, c, intersect_ibp)
    raise SystemExit("the own backend implements ibp and crown only; alpha-crown needs --backend lirpa")


# ---------------------------------------------------------------------------------------------------------
# auto_LiRPA backend
# ---------------------------------------------------------------------------------------------------------

class Lirpa:
    """auto_LiRPA's BoundedModule on a Float64 copy of the model."""

    def __init__(self, model, width, method, alpha_iterations, alpha_lr):
        import auto_LiRPA
        from auto_LiRPA import BoundedModule, BoundedTensor, PerturbationLpNorm
        from auto_LiRPA.bound_ops import BoundRelu
        self.version = getattr(auto_LiRPA, "__version__", "?")
        self.BoundedTensor, self.PerturbationLpNorm = BoundedTensor, PerturbationLpNorm
        torch.set_default_dtype(F64)
        opts = {"sparse_intermediate_bounds": False, "sparse_features_alpha": False,
                "optimize_bound_args": {"iteration": alpha_iterations, "lr_alpha": alpha_lr}}
        self.module = BoundedModule(copy.deepcopy(model).to(F64), torch.zeros(1, width, dtype=F64),
                                    bound_opts=opts, device="cpu")
        self.method = {"ibp": "IBP", "crown": "backward", "alpha-crown": "CROWN-Optimized"}[method]
        # The pre-activation nodes (the inputs of the ReLUs), for --intersect-ibp's reference bounds.
        self.pre_activation_nodes = [node.inputs[0].name for node in self.module._modules.values()
                                     if isinstance(node, BoundRelu)]

    def bounds(self, region, c, intersect_ibp):
        if region.norm == "linf":
            perturbation = self.PerturbationLpNorm(eps=region.eps, norm=np.inf, x_L=region.lower, x_U=region.upper)
        else:
            perturbation = self.PerturbationLpNorm(eps=region.eps, norm=2)
        x = self.BoundedTensor(region.x, perturbation)
        reference = None
        if intersect_ibp and self.method != "IBP":
            reference = {}
            for name in self.pre_activation_nodes:
                lower, upper = self.module.compute_bounds(x=(x,), method="IBP", final_node_name=name)
                reference[name] = (lower.detach(), upper.detach())
        lower, _ = self.module.compute_bounds(x=(x,), C=c, method=self.method, bound_upper=False,
                                              reference_bounds=reference)
        return lower.detach()


# ---------------------------------------------------------------------------------------------------------
# Soundness self-check
# ---------------------------------------------------------------------------------------------------------

def true_margins(layers, points, label, others):
    """z_y − z_j (P × S) in Float64 for points (P × d)."""
    h = points
    for i, (w, b) in enumerate(layers):
        h = h @ w.T + b
        if i < len(layers) - 1:
            h = h.clamp(min=0)
    return h[:, label].unsqueeze(1) - h[:, others]


def soundness_check(layers, region, labels, others, bounds, count, samples, pgd_steps, generator):
    """Sample the input sets of the first `count` examples and check every margin against its lower bound."""
    violations, worst_slack, checked = 0, math.inf, 0
    d = region.x.shape[1]
    for e in range(min(count, region.x.shape[0])):
        half = samples // 2
        x = region.x[e]
        if region.norm == "linf":
            lower, upper = region.lower[e], region.upper[e]
            corners = torch.where(torch.rand(half, d, generator=generator, dtype=F64) < 0.5, lower, upper)
            uniform = lower + (upper - lower) * torch.rand(samples - half, d, generator=generator, dtype=F64)
            points = torch.cat([corners, uniform])
        else:
            directions = torch.randn(samples, d, generator=generator, dtype=F64)
            directions = directions / directions.norm(dim=1, keepdim=True)
            radii = torch.ones(samples, 1, dtype=F64)
            radii[half:] = torch.rand(samples - half, 1, generator=generator, dtype=F64) ** (1.0 / d)
            points = x + region.eps * radii * directions
        points = torch.cat([x.unsqueeze(0), points, pgd_point(layers, region, e, labels[e], others[e], pgd_steps)])
        slack = true_margins(layers, points, int(labels[e]), others[e]) - bounds[e].unsqueeze(0)
        violations += int((slack < -1e-9).sum())
        worst_slack = min(worst_slack, float(slack.min()))
        checked += slack.numel()
    return {"examples": min(count, region.x.shape[0]), "points_per_example": samples + 2,
            "margins_checked": checked, "violations": violations, "min_slack": worst_slack}


def pgd_point(layers, region, e, label, others, steps):
    """A PGD attack (sign steps, projection onto the input set) on the worst margin min_j z_y − z_j."""
    x0 = region.x[e]
    if steps <= 0:
        return x0.unsqueeze(0)
    step = region.eps / 4
    point = x0.clone()
    for _ in range(steps):
        point.requires_grad_(True)
        margin = true_margins(layers, point.unsqueeze(0), int(label), others).min()
        (grad,) = torch.autograd.grad(margin, point)
        with torch.no_grad():
            if region.norm == "linf":
                point = torch.minimum(torch.maximum(point - step * grad.sign(), region.lower[e]), region.upper[e])
            else:
                point = point - step * grad / grad.norm().clamp(min=1e-12)
                delta = point - x0
                point = x0 + delta * min(1.0, region.eps / max(float(delta.norm()), 1e-12))
        step *= 0.95
    return point.detach().unsqueeze(0)


# ---------------------------------------------------------------------------------------------------------
# Comparison with Bulwark
# ---------------------------------------------------------------------------------------------------------

def compare(bulwark, ours, clean_correct, tolerance, atol):
    theirs = np.array([np.nan if v is None else float(v) for v in bulwark["margin_lower_bounds"]], dtype=np.float64)
    n = len(ours)
    if len(theirs) != n:
        raise SystemExit(f"bulwark JSON has {len(theirs)} margin bounds, expected n = {n}")
    if "certified" in bulwark and isinstance(bulwark["certified"], list):
        theirs_certified = np.array(bulwark["certified"], dtype=bool)
    else:
        theirs_certified = theirs > tolerance
    ours_certified = clean_correct & (ours > tolerance)
    both = np.isfinite(theirs) & np.isfinite(ours)
    difference = theirs[both] - ours[both]
    result = {
        "bulwark_certified_accuracy": bulwark.get("certified_accuracy"),
        "bulwark_clean_accuracy": bulwark.get("clean_accuracy"),
        "bulwark_seconds": bulwark.get("seconds"),
        "bulwark_certified_from_bounds": int(theirs_certified.sum()),
        "certified_accuracy_difference": (None if bulwark.get("certified_accuracy") is None
                                          else float(bulwark["certified_accuracy"]) - float(ours_certified.mean())),
        "status_differs": int((theirs_certified != ours_certified).sum()),
        "certified_by_bulwark_only": int((theirs_certified & ~ours_certified).sum()),
        "certified_by_peer_only": int((~theirs_certified & ours_certified).sum()),
        "compared_bounds": int(both.sum()),
        "non_finite_bulwark_bounds": int((~np.isfinite(theirs)).sum()),
        "max_abs_bound_difference": float(np.abs(difference).max()) if difference.size else None,
        "median_abs_bound_difference": float(np.median(np.abs(difference))) if difference.size else None,
        "compare_atol": atol,
        "bulwark_tighter": int((difference > atol).sum()),
        "bulwark_looser": int((difference < -atol).sum()),
        "max_bulwark_tighter_by": float(max(difference.max(), 0.0)) if difference.size else None,
        "max_bulwark_looser_by": float(max(-difference.min(), 0.0)) if difference.size else None,
    }
    stated = bulwark.get("certified_accuracy")
    if stated is not None and abs(float(stated) - theirs_certified.mean()) > 0.5 / n:
        result["warning"] = (f"bulwark's certified_accuracy {stated} disagrees with its own margin bounds "
                             f"({theirs_certified.mean():.4f} > tolerance)")
    return result


# ---------------------------------------------------------------------------------------------------------

def resolve_backend(requested):
    """'auto' is auto_LiRPA ('lirpa') where it is installed, else the own PyTorch implementation ('own')."""
    if requested != "auto":
        return requested
    try:
        import auto_LiRPA  # noqa: F401
        return "lirpa"
    except ImportError:
        return "own"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True)
    parser.add_argument("--eps", type=float, required=True)
    parser.add_argument("--norm", choices=["linf", "l2"], default="linf")
    parser.add_argument("--method", choices=["ibp", "crown", "alpha-crown"], default="crown")
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--backend", choices=["auto", "lirpa", "own"], default="auto")
    parser.add_argument("--intersect-ibp", action="store_true",
                        help="intersect CROWN's intermediate intervals with IBP's")
    parser.add_argument("--tolerance", type=float, default=1e-4,
                        help="certified iff clean-correct and worst margin bound > tolerance")
    parser.add_argument("--alpha-iterations", type=int, default=20)
    parser.add_argument("--alpha-lr", type=float, default=0.5)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--data-dir", default="/usr/share/datasets/fashion-mnist")
    parser.add_argument("--crosscheck", action="store_true",
                        help="with the lirpa backend, also run the own implementation and report the difference")
    parser.add_argument("--soundness", type=int, default=0, metavar="K",
                        help="sample the input sets of the first K examples and check the bounds")
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--pgd-steps", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--bulwark-json")
    parser.add_argument("--compare-atol", type=float, default=1e-6,
                        help="a bound differing by more than this counts as tighter/looser")
    parser.add_argument("--out", help="write the summary with per-example arrays to this JSON file")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    model, _ = load_model(args.model)  # Float32, built before any change of the default dtype
    layers = affine_layers(model)
    classes = layers[-1][0].shape[0]
    images, labels = load(args.data_dir, "test")
    images, labels = images[:args.n], labels[:args.n]
    n = len(labels)

    backend = resolve_backend(args.backend)
    if backend == "own" and args.method == "alpha-crown":
        raise SystemExit("alpha-crown needs auto_LiRPA (--backend lirpa, Benchmarks/peers/.venv-lirpa)")
    setup_start = time.perf_counter()
    lirpa = (Lirpa(model, images.shape[1], args.method, args.alpha_iterations, args.alpha_lr)
             if backend == "lirpa" else None)
    setup_seconds = time.perf_counter() - setup_start

    start = time.perf_counter()
    with torch.no_grad():
        clean_correct = (model(images).argmax(1) == labels).numpy()
    margins, worst = [], []
    for first in range(0, n, args.batch):
        region = Region(images[first:first + args.batch].to(F64), args.eps, args.norm)
        c, _ = specification(labels[first:first + args.batch], classes)
        if lirpa is not None:
            bounds = lirpa.bounds(region, c, args.intersect_ibp)
        else:
            with torch.no_grad():
                bounds = own_bounds(layers, region, c, args.method, args.intersect_ibp)
        margins.append(bounds)
        worst.append(bounds.min(dim=1).values)
    seconds = time.perf_counter() - start
    margins = torch.cat(margins)
    worst = torch.cat(worst).numpy()
    certified = clean_correct & (worst > args.tolerance)

    name = {"ibp": "IBP", "crown": "CROWN", "alpha-crown": "alpha-CROWN"}[args.method]
    if args.intersect_ibp and args.method == "crown":
        name += " ∩ IBP"
    impl = f"auto_LiRPA {lirpa.version} (torch {torch.__version__})" if lirpa else f"own Float64 (torch {torch.__version__})"
    summary = {"model": args.model, "method": args.method, "norm": args.norm, "epsilon": args.eps, "n": n,
               "backend": backend, "implementation": impl, "intersect_ibp": args.intersect_ibp,
               "tolerance": args.tolerance, "clean_accuracy": float(clean_correct.mean()),
               "certified_accuracy": float(certified.mean()), "certified": int(certified.sum()),
               "seconds": seconds, "setup_seconds": setup_seconds, "threads": args.threads, "batch": args.batch,
               "median_margin_lower_bound": float(np.median(worst))}
    print(f"# {args.model}: {name} {args.norm} ε = {args.eps}, n = {n}, {impl}")
    print(f"clean accuracy      {summary['clean_accuracy']:.4f}")
    print(f"certified accuracy  {summary['certified_accuracy']:.4f}  ({summary['certified']}/{n}, tolerance {args.tolerance:g})")
    print(f"seconds             {seconds:.2f}  (+ {setup_seconds:.2f} setup; {args.threads} threads, batch {args.batch})")

    if args.crosscheck:
        if lirpa is None or args.method == "alpha-crown":
            print("# --crosscheck: needs the lirpa backend and ibp or crown; skipped")
        else:
            own = []
            with torch.no_grad():
                for first in range(0, n, args.batch):
                    region = Region(images[first:first + args.batch].to(F64), args.eps, args.norm)
                    c, _ = specification(labels[first:first + args.batch], classes)
                    own.append(own_bounds(layers, region, c, args.method, args.intersect_ibp))
            own = torch.cat(own)
            own_certified = clean_correct & (own.min(dim=1).values.numpy() > args.tolerance)
            summary["crosscheck"] = {"max_abs_difference_all_margins": float((own - margins).abs().max()),
                                     "max_abs_difference_worst_margin":
                                         float(np.abs(own.min(dim=1).values.numpy() - worst).max()),
                                     "status_differs": int((own_certified != certified).sum())}
            print(f"crosscheck own vs auto_LiRPA: max |Δ| {summary['crosscheck']['max_abs_difference_all_margins']:.3e}, "
                  f"status differs on {summary['crosscheck']['status_differs']}")

    if args.soundness > 0:
        generator = torch.Generator().manual_seed(args.seed)
        k = min(args.soundness, n)
        region = Region(images[:k].to(F64), args.eps, args.norm)
        _, others = specification(labels[:k], classes)
        summary["soundness"] = soundness_check(layers, region, labels[:k], others, margins[:k].to(F64), k,
                                               args.samples, args.pgd_steps, generator)
        s = summary["soundness"]
        print(f"soundness           {s['violations']} violations in {s['margins_checked']} margins "
              f"({s['examples']} examples × {s['points_per_example']} points), min slack {s['min_slack']:.4g}")

    if args.bulwark_json:
        with open(args.bulwark_json) as f:
            bulwark = json.load(f)
        for key, ours in (("method", args.method), ("norm", args.norm), ("n", n)):
            if key in bulwark and str(bulwark[key]).lower() != str(ours).lower():
                print(f"# warning: bulwark {key} = {bulwark[key]!r}, peer {ours!r}")
        if "epsilon" in bulwark and abs(float(bulwark["epsilon"]) - args.eps) > 1e-12:
            print(f"# warning: bulwark epsilon = {bulwark['epsilon']}, peer {args.eps}")
        summary["comparison"] = compare(bulwark, worst, clean_correct, args.tolerance, args.compare_atol)
        r = summary["comparison"]
        print(f"bulwark certified   {r['bulwark_certified_accuracy']}  (clean {r['bulwark_clean_accuracy']}, "
              f"{r['bulwark_seconds']} s)")
        print(f"Δ certified acc.    {r['certified_accuracy_difference']}  (bulwark − peer); status differs on "
              f"{r['status_differs']} (bulwark only {r['certified_by_bulwark_only']}, peer only {r['certified_by_peer_only']})")
        print(f"|Δ margin bound|    max {r['max_abs_bound_difference']}, median {r['median_abs_bound_difference']}")
        print(f"bulwark tighter on {r['bulwark_tighter']} (by ≤ {r['max_bulwark_tighter_by']}), looser on "
              f"{r['bulwark_looser']} (by ≤ {r['max_bulwark_looser_by']}), atol {args.compare_atol:g}")
        if "warning" in r:
            print(f"# warning: {r['warning']}")

    if args.out:
        full = dict(summary, margin_lower_bounds=[float(v) for v in worst],
                    clean_correct=[bool(v) for v in clean_correct], certified=[bool(v) for v in certified])
        with open(args.out, "w") as f:
            json.dump(full, f)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
