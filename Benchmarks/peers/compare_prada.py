#!/usr/bin/env python3
"""PRADA (Juuti et al. 2019) outside Bulwark, for the cross-check of `PRADAStream`. Not run in CI.

    python3 Benchmarks/peers/compare_prada.py [--out Tests/ServingCoreTests/Fixtures/prada-replay.json]

Streams the committed sample's test images, in order, through the shipped standard model (numpy,
weights read from models/mlp-standard.safetensors) and runs PRADA as the authors' published
implementation describes it (written here from that description, with numpy and scipy):

- per predicted class, a growing set G_c; its first input is stored with a distance of 0;
- each later query's distance d = min ||x - y||_2 over G_c joins the class's distances; if d > T_c,
  x joins G_c and T_c = max(T_c, mean - std of the distances that grew G_c, population std);
- the test: the distances of classes with at least 10 of them, without those more than 3 standard
  deviations from their mean; with more than 100 left, W = scipy.stats.shapiro.

Bulwark tests after every 10th query (1-based); this script computes W at the same points, with
no memory bound (Bulwark's test runs with one large enough never to replace an input). It writes
the predicted classes and the W at every test point, which `PRADATests` compares with
`PRADAStream` (W to 1e-6: scipy's Shapiro-Wilk and Bulwark's implementation of Royston's
approximation differ in the last digits). Requires numpy and scipy.
"""
import argparse
import gzip
import json
import os
import struct

import numpy as np
import scipy.stats

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def load_safetensors(path):
    data = open(path, "rb").read()
    (length,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + length])
    tensors = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        start, end = entry["data_offsets"]
        tensors[name] = np.frombuffer(data[8 + length + start:8 + length + end], dtype=np.float32).reshape(entry["shape"])
    return tensors


def predictions(weights, x):
    h = np.maximum(x @ weights["0.weight"].T + weights["0.bias"], 0)
    h = np.maximum(h @ weights["2.weight"].T + weights["2.bias"], 0)
    return (h @ weights["4.weight"].T + weights["4.bias"]).argmax(axis=1)


def prada_trace(x, predicted, interval=10, minimum=100):
    growing, grew, threshold, distances = {}, {}, {}, []  # distances: (class, d) in order
    trace = []
    for i, (query, c) in enumerate(zip(x, predicted), start=1):
        c = int(c)
        if c not in growing:
            growing[c], grew[c], threshold[c] = [query], [0.0], 0.0
        else:
            d = float(np.min(np.sqrt(((np.asarray(growing[c], dtype=np.float64) - query.astype(np.float64)) ** 2).sum(axis=1))))
            distances.append((c, d))
            if d > threshold[c]:
                growing[c].append(query)
                grew[c].append(d)
                threshold[c] = max(threshold[c], float(np.mean(grew[c]) - np.std(grew[c])))
        if i % interval:
            continue
        counts = {}
        for k, _ in distances:
            counts[k] = counts.get(k, 0) + 1
        sample = np.array([d for k, d in distances if counts[k] >= 10])
        if len(sample) <= minimum:
            continue
        kept = sample[np.abs(sample - sample.mean()) < 3 * sample.std()]
        if len(kept) <= minimum:
            continue
        trace.append({"queries": i, "w": float(scipy.stats.shapiro(kept).statistic)})
    return trace


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=os.path.join(ROOT, "Tests/ServingCoreTests/Fixtures/prada-replay.json"))
    args = parser.parse_args()
    raw = gzip.open(os.path.join(ROOT, "datasets/fashion-mnist-sample/t10k-images-idx3-ubyte.gz")).read()
    (count,) = struct.unpack(">I", raw[4:8])
    x = (np.frombuffer(raw[16:], dtype=np.uint8).reshape(count, 784) / np.float32(255)).astype(np.float32)
    predicted = predictions(load_safetensors(os.path.join(ROOT, "models/mlp-standard.safetensors")), x)
    trace = prada_trace(x, predicted)
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump({"source": "Benchmarks/peers/compare_prada.py (numpy, scipy " + scipy.__version__ + ")",
                   "predicted": [int(c) for c in predicted], "trace": trace}, f)
        f.write("\n")
    print(f"{count} queries, {len(trace)} test points, smallest W {min(t['w'] for t in trace):.6f}; wrote {args.out}")


if __name__ == "__main__":
    main()
