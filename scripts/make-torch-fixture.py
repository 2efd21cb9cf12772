#!/usr/bin/env python3
"""Make the PyTorch interoperability test fixtures for NeuralNetTests.

Writes safetensors files exactly as plain PyTorch code would (a `torch.nn.Sequential` of Linear
layers saved with `safetensors.torch.save_file(model.state_dict(), path)`, no metadata, so no
Bulwark architecture header), plus a JSON file of inputs and the logits PyTorch computes for them.
A Swift test loads each file, lets Bulwark infer the architecture from the tensor names and shapes,
and checks that it computes the same logits.

Files written to OUT_DIR (default Tests/NeuralNetTests/Fixtures):

    torch-sequential-tanh.safetensors    Linear(20,16) ReLU Linear(16,12) Tanh Linear(12,5), float32
    torch-sequential-f64.safetensors     the same model and weights, float64
    torch-sequential-nobias.safetensors  Linear(20,8) ReLU Linear(8,3, bias=False), float32
    torch-sequential.json                inputs (6x20), tanh_logits (6x5), nobias_logits (6x3)

The outputs are committed test fixtures (data, not code); rerun this only to regenerate them,
and commit the results together with the torch version recorded in the JSON file:

    Benchmarks/peers/setup.sh        # creates Benchmarks/peers/.venv with torch and safetensors
    Benchmarks/peers/.venv/bin/python scripts/make-torch-fixture.py [OUT_DIR]

Weights come from torch.manual_seed(0) and PyTorch's default Linear initialisation, so they can
change between torch versions; the JSON file always matches the safetensors files written with it.
"""
import json
import pathlib
import sys

import torch
from safetensors.torch import save_file

OUT_DIR = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "Tests/NeuralNetTests/Fixtures")


def to_json(fixture):
    """JSON with one matrix row per line (json.dumps writes floats with repr, so they round-trip)."""
    parts = []
    for key, value in fixture.items():
        if isinstance(value, list):
            rows = ",\n".join("  " + json.dumps(row) for row in value)
            parts.append(f" {json.dumps(key)}: [\n{rows}\n ]")
        else:
            parts.append(f" {json.dumps(key)}: {json.dumps(value)}")
    return "{\n" + ",\n".join(parts) + "\n}\n"


def main():
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)

    tanh_model = torch.nn.Sequential(
        torch.nn.Linear(20, 16), torch.nn.ReLU(),
        torch.nn.Linear(16, 12), torch.nn.Tanh(),
        torch.nn.Linear(12, 5),
    ).float().eval()
    nobias_model = torch.nn.Sequential(
        torch.nn.Linear(20, 8), torch.nn.ReLU(),
        torch.nn.Linear(8, 3, bias=False),
    ).float().eval()

    inputs = torch.rand(6, 20, generator=torch.Generator().manual_seed(1), dtype=torch.float32)
    with torch.no_grad():
        tanh_logits = tanh_model(inputs)
        nobias_logits = nobias_model(inputs)

    # Keys: 0.weight, 0.bias, 2.weight, 2.bias, 4.weight, 4.bias (nobias: 0.weight, 0.bias, 2.weight).
    save_file(tanh_model.state_dict(), str(OUT_DIR / "torch-sequential-tanh.safetensors"))
    save_file(nobias_model.state_dict(), str(OUT_DIR / "torch-sequential-nobias.safetensors"))
    # .double() converts in place, so do it last, after the float32 logits and file are written.
    save_file(tanh_model.double().state_dict(), str(OUT_DIR / "torch-sequential-f64.safetensors"))

    fixture = {
        "inputs": inputs.tolist(),
        "tanh_logits": tanh_logits.tolist(),
        "nobias_logits": nobias_logits.tolist(),
        "torch_version": torch.__version__,
        "made_by": "scripts/make-torch-fixture.py",
    }
    with open(OUT_DIR / "torch-sequential.json", "w") as f:
        f.write(to_json(fixture))
    print(f"wrote fixtures to {OUT_DIR} with torch {torch.__version__}")


if __name__ == "__main__":
    main()
