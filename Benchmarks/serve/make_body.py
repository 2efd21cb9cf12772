#!/usr/bin/env python3
"""Write a predict request body {"inputs": [[784 numbers], ...]} from Fashion-MNIST test images.

    python3 make_body.py --rows 1  --out /tmp/body1.json
    python3 make_body.py --rows 32 --out /tmp/body32.json [--start 0] [--data-dir DIR]

Rows are test images start .. start+rows-1 (t10k-images-idx3-ubyte[.gz]), pixel/255 as float32, each
written as the shortest decimal that reads back as the same float32 ("0.003921569", "0", "1"), in
compact JSON. Standard library only. The data directory defaults to /usr/share/datasets/fashion-mnist,
else the repository's datasets/fashion-mnist-sample (its first 1,000 test images).
"""
import argparse
import gzip
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
DATA_DIRS = ["/usr/share/datasets/fashion-mnist", os.path.join(HERE, "..", "..", "datasets", "fashion-mnist-sample")]


def f32(x):
    return struct.unpack("<f", struct.pack("<f", x))[0]


def shortest_f32(x):
    v = f32(x)
    if v == int(v):
        return str(int(v))
    for digits in range(1, 10):
        s = f"{v:.{digits}g}"
        if f32(float(s)) == v:
            return s
    return repr(v)


PIXEL = [shortest_f32(f32(p) / f32(255.0)) for p in range(256)]  # float32(p) / 255 in float32


def test_images(directory):
    base = os.path.join(directory, "t10k-images-idx3-ubyte")
    path = base + ".gz" if os.path.exists(base + ".gz") else base
    with (gzip.open if path.endswith(".gz") else open)(path, "rb") as f:
        data = f.read()
    magic, count, rows, cols = struct.unpack(">4I", data[:16])
    if magic != 0x00000803 or rows * cols != 784:
        raise SystemExit(f"{path}: not an IDX file of 28x28 images")
    return count, data[16:]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1, help="rows in the body, 1..256 (default 1)")
    parser.add_argument("--start", type=int, default=0, help="first test image (default 0)")
    parser.add_argument("--data-dir", help="directory with t10k-images-idx3-ubyte[.gz]")
    parser.add_argument("--out", help="output file (default /tmp/body{rows}.json)")
    args = parser.parse_args()
    if not 1 <= args.rows <= 256:
        parser.error("--rows must be 1..256 (the server rejects more with 422)")
    directory = args.data_dir or next((d for d in DATA_DIRS if os.path.isdir(d)), None)
    if directory is None:
        raise SystemExit("no Fashion-MNIST directory found; pass --data-dir")
    count, pixels = test_images(directory)
    if args.start < 0 or args.start + args.rows > count:
        raise SystemExit(f"{directory} has {count} test images; start {args.start} + rows {args.rows} is past the end")
    rows = []
    for i in range(args.start, args.start + args.rows):
        img = pixels[i * 784:(i + 1) * 784]
        rows.append("[" + ",".join(PIXEL[b] for b in img) + "]")
    body = '{"inputs":[' + ",".join(rows) + "]}"
    out = args.out or f"/tmp/body{args.rows}.json"
    with open(out, "w") as f:
        f.write(body)
    print(f"{out}: {args.rows} row(s) from {os.path.normpath(directory)} images {args.start}..{args.start + args.rows - 1}, "
          f"{len(body)} bytes", file=sys.stderr)


if __name__ == "__main__":
    main()
