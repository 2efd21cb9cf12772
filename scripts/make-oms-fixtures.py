#!/usr/bin/env python3
"""Make the OpenSSF Model Signing (OMS v1.0) interoperability fixtures for SecurityTests.

The fixtures are models signed with keys by the reference Python tool `model_signing`
(PyPI package `model-signing`, version 1.1.1), so that Swift tests can check that Bulwark
verifies what the reference tool signs. It needs, in the Python that runs it:

    python3 -m pip install model-signing==1.1.1 pyOpenSSL cryptography
    python3 scripts/make-oms-fixtures.py [OUT_DIR]

(`model-signing` 1.1.1 imports `OpenSSL` but does not declare it, so `pyOpenSSL` must be
installed by hand; `cryptography` comes with it.)

Everything in OUT_DIR (default Tests/SecurityTests/Fixtures/oms) is deleted and rewritten:

    keys/p256-private.pem, keys/p384-private.pem   PKCS#8 PEM, unencrypted. TEST-ONLY keys,
    keys/p256-public.pem,  keys/p384-public.pem    SPKI PEM. Derived from fixed public labels,
                                                   so they are the same on every run.
    model-p256/      a small model directory          model-p256.sig   (P-256 key)
    model-p384/      the same files plus `ignore-me`, model-p384.sig   (P-384 key,
                     signed with --ignore-paths model-p384/ignore-me)
    single-file/weights.bin   a one-file model         single-file.sig  (P-256 key)
    README.md        what each file is, the commands, the tool version, resource names

Model file contents are fixed, so the resource digests, root digests and key hints are the
same on every run. The signatures are not: ECDSA signing is randomised, and the tool writes
the in-toto statement's `predicate` object keys in an order that changes from run to run.
Each signature file is written beside its model (outside the model directory).

The commands are run with OUT_DIR as the working directory, exactly as README.md shows them
(`--signature` and `--ignore-paths` are resolved against the working directory). The script
then checks each bundle against an independent computation (file SHA-256s, root digest, key
hint) and runs `model_signing verify key` on each; it exits non-zero if anything disagrees.
Never write a file named .gitignore, .gitattributes or .git into OUT_DIR: they would act on
this repository.
"""
import base64
import hashlib
import importlib.metadata
import json
import pathlib
import shutil
import subprocess
import sys

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

TOOL_VERSION = "1.1.1"
REPO = pathlib.Path(__file__).resolve().parent.parent
OUT = pathlib.Path(sys.argv[1]).resolve() if len(sys.argv) > 1 else (
    REPO / "Tests" / "SecurityTests" / "Fixtures" / "oms")

CURVES = {
    "p256": (ec.SECP256R1(),
             0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551),
    "p384": (ec.SECP384R1(),
             int("FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFC7634D81F4372DDF581A0DB2"
                 "48B0A77AECEC196ACCC52973", 16)),
}


def weights(n=4096):
    """n deterministic pseudo-random bytes (SHA-256 in counter mode)."""
    out = b"".join(hashlib.sha256(b"bulwark-oms-weights" + i.to_bytes(4, "big")).digest()
                   for i in range((n + 31) // 32))
    return out[:n]


# The model files (relative path -> bytes). `sub.txt` next to `sub/` makes the sort order
# differ between the spec (whole name, code points: "sub.txt" < "sub/tokenizer.txt") and
# Python (component by component: "sub/tokenizer.txt" first). `.hidden` is a dotfile that is
# signed; `.github/notes.txt` is left out by the tool's default git-path ignores.
MODEL_FILES = {
    "config.json": b'{"architecture": "mlp", "layers": [4, 8, 2], "dtype": "float32"}\n',
    "weights.bin": weights(),
    "sub/tokenizer.txt": b"<pad>\n<unk>\nhello\nworld\n",
    "sub.txt": b"sorts between sub/ and the rest only in code-point order\n",
    ".hidden": b"dotfiles are signed\n",
    ".github/notes.txt": b"ignored by default (top-level .github)\n",
}


def make_key(name):
    curve, order = CURVES[name]
    seed = hashlib.sha512(f"bulwark-oms-test-key-{name} (TEST ONLY)".encode()).digest()
    scalar = int.from_bytes(seed, "big") % (order - 1) + 1
    key = ec.derive_private_key(scalar, curve)
    (OUT / "keys" / f"{name}-private.pem").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    pub = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    (OUT / "keys" / f"{name}-public.pem").write_bytes(pub)
    return hashlib.sha256(pub).hexdigest()  # the bundle's publicKey.hint


def write_model(root, files):
    for rel, data in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)


def tool(*args):
    cmd = [sys.executable, "-m", "model_signing", *args]
    r = subprocess.run(cmd, cwd=OUT, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"failed ({r.returncode}): model_signing {' '.join(args)}\n{r.stdout}{r.stderr}")


def check_bundle(sig, hint, expected, ignore_paths):
    """Check a bundle against names and SHA-256s computed here; return (names, root, payload)."""
    bundle = json.loads((OUT / sig).read_text())
    assert list(bundle) == ["mediaType", "verificationMaterial", "dsseEnvelope"], list(bundle)
    assert bundle["mediaType"] == "application/vnd.dev.sigstore.bundle.v0.3+json"
    assert bundle["verificationMaterial"] == {"publicKey": {"hint": hint}, "tlogEntries": []}
    env = bundle["dsseEnvelope"]
    assert env["payloadType"] == "application/vnd.in-toto+json"
    assert len(env["signatures"]) == 1 and env["signatures"][0]["keyid"] == ""
    statement = json.loads(base64.b64decode(env["payload"]))
    pred = statement["predicate"]
    names = [r["name"] for r in pred["resources"]]
    got = {r["name"]: (r["algorithm"], r["digest"]) for r in pred["resources"]}
    want = {n: ("sha256", hashlib.sha256(d).hexdigest()) for n, d in expected.items()}
    assert got == want, (sig, got, want)
    root = hashlib.sha256(b"".join(bytes.fromhex(r["digest"]) for r in pred["resources"]))
    assert statement["subject"][0]["digest"]["sha256"] == root.hexdigest()
    ser = pred["serialization"]
    assert (ser["method"], ser["hash_type"], ser["allow_symlinks"]) == ("files", "sha256", False)
    assert sorted(ser["ignore_paths"]) == sorted(ignore_paths), ser
    return names, statement["subject"][0]["name"], root.hexdigest()


def main():
    version = importlib.metadata.version("model-signing")
    if version != TOOL_VERSION:
        sys.exit(f"model-signing {version} is installed; these fixtures are made with "
                 f"{TOOL_VERSION} (python3 -m pip install model-signing=={TOOL_VERSION})")
    if OUT.exists():
        shutil.rmtree(OUT)
    (OUT / "keys").mkdir(parents=True)
    hints = {name: make_key(name) for name in CURVES}

    write_model(OUT / "model-p256", MODEL_FILES)
    write_model(OUT / "model-p384", {**MODEL_FILES, "ignore-me": b"not part of the signature\n"})
    write_model(OUT / "single-file", {"weights.bin": MODEL_FILES["weights.bin"]})

    git = [".git", ".gitattributes", ".github", ".gitignore"]
    signed = {k: v for k, v in MODEL_FILES.items() if not k.startswith(".github/")}
    cases = [
        # (signature, model path, key, extra sign args, expected resources, ignore_paths)
        ("model-p256.sig", "model-p256", "p256", [], signed, git),
        ("model-p384.sig", "model-p384", "p384", ["--ignore-paths", "model-p384/ignore-me"],
         signed, git + ["ignore-me"]),
        ("single-file.sig", "single-file/weights.bin", "p256", [],
         {".": MODEL_FILES["weights.bin"]}, git),
    ]
    rows = []
    for sig, model, key, extra, expected, ignore_paths in cases:
        tool("sign", "key", model, "--private_key", f"keys/{key}-private.pem",
             "--signature", sig, *extra)
        names, subject, root = check_bundle(sig, hints[key], expected, ignore_paths)
        tool("verify", "key", model, "--signature", sig, "--public_key", f"keys/{key}-public.pem")
        rows.append((sig, model, key, extra, names, subject, root))
        print(f"{sig}: {len(names)} resources, root {root[:16]}..., verified")

    (OUT / "README.md").write_text(readme(rows, hints))
    total = sum(p.stat().st_size for p in OUT.rglob("*") if p.is_file())
    print(f"wrote {OUT.relative_to(REPO) if OUT.is_relative_to(REPO) else OUT} ({total} bytes)")


def readme(rows, hints):
    lines = [
        "# OMS v1.0 key-signing fixtures (made by the reference Python tool)",
        "",
        "Generated by `scripts/make-oms-fixtures.py` with `model-signing` "
        f"{TOOL_VERSION} (PyPI; CLI `model_signing`) and Python `cryptography`. Do not edit by "
        "hand: rerun the script, which deletes and rewrites this folder.",
        "",
        "**The keys in `keys/` are test-only.** They are derived from fixed public labels in the "
        "script, so anyone can recreate the private keys. Never use them for anything else.",
        "",
        "| file | what it is |",
        "|---|---|",
        "| `keys/p256-private.pem`, `keys/p384-private.pem` | ECDSA private keys (P-256, P-384), "
        "PKCS#8 PEM, unencrypted |",
        "| `keys/p256-public.pem`, `keys/p384-public.pem` | the public keys, SPKI PEM |",
        "| `model-p256/` | model directory: `config.json`, `weights.bin` (4096 deterministic "
        "bytes), `sub/tokenizer.txt`, `sub.txt`, `.hidden`, `.github/notes.txt` (left out by the "
        "default git-path ignores) |",
        "| `model-p256.sig` | Sigstore bundle JSON signing `model-p256/` with the P-256 key |",
        "| `model-p384/` | the same files plus `ignore-me` |",
        "| `model-p384.sig` | bundle signing `model-p384/` with the P-384 key, `ignore-me` "
        "excluded with `--ignore-paths` (so the bundle's `ignore_paths` lists it) |",
        "| `single-file/weights.bin` | the same `weights.bin`, signed as a one-file model |",
        "| `single-file.sig` | bundle signing `single-file/weights.bin` with the P-256 key |",
        "",
        "The commands, run in this folder (note the underscores in `--private_key` and "
        "`--public_key`: the hyphenated forms are rejected; `--ignore-paths` has a hyphen):",
        "",
        "```sh",
    ]
    for sig, model, key, extra, *_ in rows:
        lines.append(f"model_signing sign key {model} --private_key keys/{key}-private.pem "
                     f"--signature {sig}" + "".join(f" {a}" for a in extra))
    for sig, model, key, *_ in rows:
        lines.append(f"model_signing verify key {model} --signature {sig} "
                     f"--public_key keys/{key}-public.pem")
    lines += [
        "```",
        "",
        "Every bundle has `mediaType` `application/vnd.dev.sigstore.bundle.v0.3+json`, "
        "`verificationMaterial` `{\"publicKey\": {\"hint\": …}, \"tlogEntries\": []}`, one DSSE "
        "signature (ASN.1 DER ECDSA over the DSSE PAE, SHA-256 for P-256 and SHA-384 for P-384) "
        "with `keyid` `\"\"`, and an in-toto Statement v1 payload (2-space indented JSON) with "
        "predicate type `https://model_signing/signature/v1.0` and serialization `files`, "
        "`sha256`, `allow_symlinks: false`. `ignore_paths` always lists the default git paths "
        "(`.git`, `.gitattributes`, `.github`, `.gitignore`), in an order that varies.",
        "",
        "Key hints (SHA-256 of the SPKI PEM): P-256 `" + hints["p256"] + "`, P-384 `"
        + hints["p384"] + "`.",
        "",
        "| bundle | subject name | root digest (SHA-256) | resource names, in bundle order |",
        "|---|---|---|---|",
    ]
    for sig, model, key, extra, names, subject, root in rows:
        lines.append(f"| `{sig}` | `{subject}` | `{root}` | "
                     + ", ".join(f"`{n}`" for n in names) + " |")
    lines += [
        "",
        "The resource order is Python's (path components compared one by one), so "
        "`sub/tokenizer.txt` comes before `sub.txt`; sorting whole names by code point would "
        "put `sub.txt` first. The signatures and the order of the payload's `predicate` keys "
        "change on every run; names, digests and hints do not.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
