#!/usr/bin/env python3
"""FGSM (L∞) on the full Fashion-MNIST test set computed in float32 and in float64, on the same
weights: how much does the gradient sign, and so the attack's accuracy, depend on the precision?

    Benchmarks/peers/setup.sh                  # once: PyTorch in Benchmarks/peers/.venv
    Benchmarks/peers/.venv/bin/python Benchmarks/peers/fgsm_float64.py MODEL.safetensors \\
        [--eps 0.1 [0.05 ...]] [--threads 2] [--out result.json]

x' = clamp(x + ε·sign(∇x CE(model(x), y)), 0, 1) with y the true labels, once with the model and the
inputs in float32 and once after model.double() with float64 inputs (the float32 pixels k/255
widened, so both runs start from the same values; ε is ε in each precision). The cross-entropy is
summed over the batch, so each example's input gradient is that of its own loss (no 1/n scaling).
For each precision it prints the clean accuracy, the adversarial accuracy (prediction on x' equals
the label) and the robust accuracy (clean-correct AND adversarially correct), then how many
examples have a gradient sign that differs between the two precisions in at least one pixel, and
in how many pixels on average. `cross` evaluates the float64 adversarial examples, rounded to
float32, on the float32 model (separates the gradient-sign effect from the forward-pass precision).
"""
import argparse
import json

import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import load_file

from pytorch_mlp import load
from torch_eval import build


def fgsm(model, x, y, eps):
    """Adversarial examples and the gradient sign (in x's dtype)."""
    x = x.clone().requires_grad_(True)
    loss = F.cross_entropy(model(x), y, reduction="sum")
    (gradient,) = torch.autograd.grad(loss, x)
    sign = gradient.sign()
    return (x.detach() + eps * sign).clamp(0, 1), sign


def accuracies(model, x, adversarial, y):
    with torch.no_grad():
        clean = model(x).argmax(1) == y
        adv = model(adversarial).argmax(1) == y
    return clean, adv


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model")
    parser.add_argument("--eps", type=float, nargs="+", default=[0.1])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--data-dir", default="/usr/share/datasets/fashion-mnist")
    parser.add_argument("--out", help="also write the results as JSON here")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    with safe_open(args.model, framework="pt") as f:
        architecture = f.metadata()["architecture"]
    model32, model64 = build(architecture), build(architecture)
    model32.load_state_dict(load_file(args.model))
    model64.load_state_dict(load_file(args.model))
    model32.eval()
    model64 = model64.double().eval()
    x32, y = load(args.data_dir, "test")
    x64 = x32.double()
    n, d = x32.shape

    results = {"model": args.model, "n": n, "torch": torch.__version__, "runs": []}
    print(f"# {args.model}: {n} test images, torch {torch.__version__}, {args.threads} thread(s)")
    for eps in args.eps:
        adv32, sign32 = fgsm(model32, x32, y, eps)
        adv64, sign64 = fgsm(model64, x64, y, eps)
        clean32, advc32 = accuracies(model32, x32, adv32, y)
        clean64, advc64 = accuracies(model64, x64, adv64, y)
        with torch.no_grad():
            cross = model32(adv64.float()).argmax(1) == y
        differs = (sign32.double() != sign64)
        per_example = differs.sum(1)
        affected = per_example > 0
        run = {
            "eps": eps,
            "float32": {"clean_accuracy": clean32.float().mean().item(),
                        "adversarial_accuracy": advc32.float().mean().item(),
                        "robust_accuracy": (clean32 & advc32).float().mean().item(),
                        "zero_gradient_pixels": int((sign32 == 0).sum())},
            "float64": {"clean_accuracy": clean64.float().mean().item(),
                        "adversarial_accuracy": advc64.float().mean().item(),
                        "robust_accuracy": (clean64 & advc64).float().mean().item(),
                        "zero_gradient_pixels": int((sign64 == 0).sum())},
            "cross_float64_examples_on_float32_model": {
                "adversarial_accuracy": cross.float().mean().item(),
                "robust_accuracy": (clean32 & cross).float().mean().item()},
            "clean_predictions_differ": int((clean32 != clean64).sum()),
            "adversarial_correctness_differs": int((advc32 != advc64).sum()),
            "examples_with_sign_difference": int(affected.sum()),
            "differing_pixels_total": int(per_example.sum()),
            "mean_differing_pixels_per_example": per_example.double().mean().item(),
            "mean_differing_pixels_per_affected_example": (per_example[affected].double().mean().item()
                                                            if affected.any() else 0.0),
            "max_differing_pixels_in_one_example": int(per_example.max()),
            "max_abs_difference_adversarial": (adv32.double() - adv64).abs().max().item(),
        }
        results["runs"].append(run)
        for precision in ("float32", "float64"):
            r = run[precision]
            print(f"ε = {eps}: {precision}: clean {r['clean_accuracy']:.4f}, adversarial {r['adversarial_accuracy']:.4f}, "
                  f"robust {r['robust_accuracy']:.4f} (zero-gradient pixels {r['zero_gradient_pixels']})")
        c = run["cross_float64_examples_on_float32_model"]
        print(f"ε = {eps}: cross (float64 examples → float32 model): adversarial {c['adversarial_accuracy']:.4f}, "
              f"robust {c['robust_accuracy']:.4f}")
        print(f"ε = {eps}: gradient sign differs in ≥ 1 pixel for {run['examples_with_sign_difference']} / {n} examples; "
              f"{run['differing_pixels_total']} of {n * d} pixels, mean {run['mean_differing_pixels_per_example']:.4f} "
              f"per example ({run['mean_differing_pixels_per_affected_example']:.2f} per affected example, "
              f"max {run['max_differing_pixels_in_one_example']}); "
              f"adversarial correctness differs for {run['adversarial_correctness_differs']}, "
              f"clean predictions differ for {run['clean_predictions_differ']}")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(results, f, indent=2)
            f.write("\n")


if __name__ == "__main__":
    main()
