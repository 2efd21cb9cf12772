#!/usr/bin/env python3
"""Cut the committed Fashion-MNIST sample from the Debian package's files.

Keeps the first N_TRAIN training and the first N_TEST test examples, in order, as gzip-compressed
IDX files (mtime 0, so the output is byte-for-byte reproducible).

    python3 scripts/make-fashion-mnist-sample.py [/usr/share/datasets/fashion-mnist] [datasets/fashion-mnist-sample]
"""
import gzip
import struct
import sys

N_TRAIN, N_TEST = 5000, 1000
source = sys.argv[1] if len(sys.argv) > 1 else "/usr/share/datasets/fashion-mnist"
target = sys.argv[2] if len(sys.argv) > 2 else "datasets/fashion-mnist-sample"


def cut(name, count):
    with gzip.open(f"{source}/{name}.gz", "rb") as f:
        data = f.read()
    rank = data[3]
    dims = list(struct.unpack(f">{rank}I", data[4:4 + 4 * rank]))
    per_item = 1
    for d in dims[1:]:
        per_item *= d
    header = data[:4] + struct.pack(f">{rank}I", count, *dims[1:])
    body = data[4 + 4 * rank: 4 + 4 * rank + count * per_item]
    with open(f"{target}/{name}.gz", "wb") as raw:
        with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=9) as out:
            out.write(header + body)


for split, count in (("train", N_TRAIN), ("t10k", N_TEST)):
    cut(f"{split}-images-idx3-ubyte", count)
    cut(f"{split}-labels-idx1-ubyte", count)
