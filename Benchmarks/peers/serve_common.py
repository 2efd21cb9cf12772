"""Shared by serve_flask.py and serve_fastapi.py: the model, the API key check, request validation and
the response, so both peers apply exactly the same rules as `bulwark serve` and differ only in the
web framework and server.

Rules (the same as Bulwark's predict path: docs/design/serve.md and Sources/Serving as of this writing):
- Key: `Authorization: Bearer KEY` (scheme case-insensitive) or `X-API-Key: KEY`. Missing or unknown → 401
  (with `WWW-Authenticate: Bearer realm="bulwark"`); another Authorization scheme, a repeated header, or
  both headers with different keys → 400. The SHA-256 of the presented key is compared with the stored
  SHA-256 by hmac.compare_digest (constant time). The peers take any raw key (no bwk_<id>_<secret> form).
- Only the configured model name exists: any other `/v1/models/{name}/predict` → 404 (checked after auth).
- `Content-Type` must be application/json (a `charset=utf-8` parameter is allowed) → else 415
  (Bulwark's float32 application/octet-stream bodies are not implemented by the peers: 415).
- Body larger than MAX_BODY = 256·784·24 bytes → 413, from Content-Length before reading when present.
- Not JSON (syntax, bad UTF-8, a duplicated object key, the non-JSON literals NaN/Infinity) → 400.
- JSON that isn't `{"inputs": [[784 numbers], ...]}` with 1..256 rows, every value finite and in [0, 1]
  (an unknown top-level field, a wrong row length, a non-number, 1e999, 1.5, 0 or 257 rows) → 422,
  with a JSON pointer to the offending place in `field` (e.g. "/inputs/3/17").
- Errors are application/problem+json: {"detail", "field" (422 only), "status", "title", "type"}, with
  Bulwark's type URIs and titles (tag:bulwark.dev,2026:problem/<slug>). Every answer has
  Cache-Control: no-store.
- 200: {"model", "sha256" (hex of the model file), "output": "full", "predictions": [{"class",
  "probabilities": [10]}]}, the softmax of the float32 logits computed by torch under
  torch.inference_mode(). Probabilities are printed by Python's float repr (up to 17 digits), Bulwark's
  by Swift's shortest float32 form, so the bytes differ though the float32 values are the same.
"""
import hashlib
import hmac
import json
import os
import sys

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import load_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_eval import build  # noqa: E402  (the same nn.Sequential builder the other peer scripts use)

FEATURES = 784
MAX_ROWS = 256
MAX_BODY = MAX_ROWS * FEATURES * 24  # 4,816,896 bytes, as in Bulwark
DEFAULT_PORT = 8443

# (slug, title) per status, as Sources/Serving/Problem.swift names them; type = PROBLEM_TYPE_PREFIX + slug.
PROBLEM_TYPE_PREFIX = "tag:bulwark.dev,2026:problem/"
KINDS = {400: ("malformed-body", "The request body is not valid JSON"),
         401: ("unauthorized", "Missing or unknown API key"),
         404: ("not-found", "Not found"),
         405: ("method-not-allowed", "Method not allowed"),
         413: ("body-too-large", "The request body is too large"),
         415: ("unsupported-media-type", "Unsupported content type"),
         422: ("invalid-input", "The request body does not hold valid inputs"),
         500: ("internal", "Internal server error")}
MALFORMED_CREDENTIALS = ("malformed-credentials", "Malformed credentials")


class Problem(Exception):
    """An RFC 9457 problem; the frameworks render it with problem_body()."""

    def __init__(self, status, detail, field=None, headers=None, kind=None):
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.field = field
        self.headers = dict(headers or {})
        self.kind = kind


def problem_body(status, detail, field=None, kind=None):
    slug, title = kind or KINDS.get(status, ("error", "Error"))
    doc = {"detail": detail, "status": status, "title": title, "type": PROBLEM_TYPE_PREFIX + slug}
    if field is not None:
        doc["field"] = field
    return json.dumps(doc, separators=(",", ":"), sort_keys=True).encode()


PROBLEM_TYPE = "application/problem+json"
NO_STORE = {"Cache-Control": "no-store"}  # on every answer, as bulwark serve sends it


# ---------------------------------------------------------------- configuration (flags or environment)

def env_config(**overrides):
    """The configuration from BULWARK_PEER_* environment variables, overridden by non-None arguments.
    Used by the factories so gunicorn / uvicorn workers (which import the module) see the same settings."""
    cfg = {
        "model": os.environ.get("BULWARK_PEER_MODEL", os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                                    "..", "..", "models", "mlp-standard.safetensors")),
        "name": os.environ.get("BULWARK_PEER_MODEL_NAME"),
        "api_key_file": os.environ.get("BULWARK_PEER_API_KEY_FILE"),
        "torch_threads": int(os.environ.get("BULWARK_PEER_TORCH_THREADS", "1")),
    }
    cfg.update({k: v for k, v in overrides.items() if v is not None})
    return cfg


def export_env(cfg):
    """Put the configuration into the environment for worker processes (uvicorn workers>1)."""
    os.environ["BULWARK_PEER_MODEL"] = os.path.abspath(cfg["model"])
    if cfg.get("name"):
        os.environ["BULWARK_PEER_MODEL_NAME"] = cfg["name"]
    if cfg.get("api_key_file"):
        os.environ["BULWARK_PEER_API_KEY_FILE"] = os.path.abspath(cfg["api_key_file"])
    os.environ["BULWARK_PEER_TORCH_THREADS"] = str(cfg["torch_threads"])


def add_common_flags(parser):
    parser.add_argument("--model", help="Bulwark model file (default: BULWARK_PEER_MODEL or models/mlp-standard.safetensors)")
    parser.add_argument("--name", help="model name in the URL (default: the file name without .safetensors)")
    parser.add_argument("--api-key-file", help="file whose first line is the raw API key (default: BULWARK_PEER_API_KEY_FILE, "
                                               "else the raw key in BULWARK_PEER_API_KEY)")
    parser.add_argument("--cert", required=True, help="TLS certificate chain, PEM")
    parser.add_argument("--key", required=True, help="TLS private key, PEM")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--torch-threads", type=int, default=None,
                        help="torch.set_num_threads in each worker process (default 1, or BULWARK_PEER_TORCH_THREADS)")
    parser.add_argument("--access-log", action="store_true", help="log every request (off by default: it costs throughput)")


# ---------------------------------------------------------------- model

class ServedModel:
    def __init__(self, path, name=None, torch_threads=1):
        torch.set_num_threads(max(1, int(torch_threads)))
        with open(path, "rb") as f:
            self.sha256 = hashlib.sha256(f.read()).hexdigest()
        with safe_open(path, framework="pt") as f:
            metadata = f.metadata()
        self.model = build(metadata["architecture"])
        self.model.load_state_dict(load_file(path))  # strict
        self.model.eval()
        base = os.path.basename(path)
        self.name = name or (base[:-len(".safetensors")] if base.endswith(".safetensors") else base)
        self.path = path

    def predict(self, x):
        """x: float32 tensor (n, 784). Returns the response document (a dict)."""
        with torch.inference_mode():
            probs = torch.softmax(self.model(x), dim=1)
            classes = probs.argmax(dim=1).tolist()
        return {"model": self.name, "sha256": self.sha256, "output": "full",
                "predictions": [{"class": k, "probabilities": p} for k, p in zip(classes, probs.tolist())]}


# ---------------------------------------------------------------- API key

def read_api_key(api_key_file=None):
    if api_key_file:
        with open(api_key_file, "rb") as f:
            lines = f.read().splitlines()
        key = lines[0].strip() if lines else b""
    else:
        key = os.environ.get("BULWARK_PEER_API_KEY", "").strip().encode()
    if not key:
        raise SystemExit("no API key: pass --api-key-file FILE (one line, the raw key) or set BULWARK_PEER_API_KEY")
    return key


class KeyCheck:
    """Stores only SHA-256(key); compares digests with hmac.compare_digest."""

    def __init__(self, key):
        self.digest = hashlib.sha256(key).digest()

    def check(self, authorizations, api_keys):
        """All values of the Authorization and X-API-Key headers, as str (latin-1, as WSGI/ASGI decode
        them). Raises Problem: 401 missing or unknown; 400 malformed (several headers, a scheme other
        than Bearer, two different keys), as Sources/Serving/Authentication.swift decides."""
        if len(authorizations) > 1 or len(api_keys) > 1:
            raise self.malformed("give one Authorization or one X-API-Key header, not several")
        bearer = None
        if authorizations:
            parts = authorizations[0].split(None, 1)
            if len(parts) != 2 or parts[0].lower() != "bearer":
                raise self.malformed("the Authorization header must be 'Bearer <key>'")
            bearer = parts[1].strip()
        header = api_keys[0].strip() if api_keys else None
        if bearer and header and bearer != header:
            raise self.malformed("the Authorization and X-API-Key headers hold different keys; send one")
        presented = bearer or header
        if not presented:
            raise Problem(401, "send the API key as 'Authorization: Bearer <key>' or 'X-API-Key: <key>'",
                          headers=self.CHALLENGE)
        try:
            raw = presented.encode("latin-1")
        except UnicodeEncodeError:
            raw = presented.encode("utf-8", "surrogateescape")
        if not hmac.compare_digest(hashlib.sha256(raw).digest(), self.digest):
            raise Problem(401, "the API key is unknown or revoked", headers=self.CHALLENGE)

    CHALLENGE = {"WWW-Authenticate": 'Bearer realm="bulwark"'}

    @staticmethod
    def malformed(detail):
        return Problem(400, detail, kind=MALFORMED_CREDENTIALS)


# ---------------------------------------------------------------- request checks

def check_content_type(value):
    """application/json, optionally with charset=utf-8 and nothing else (as PredictEndpoint.bodyKind).
    Bulwark also takes application/octet-stream (float32 rows); the peers answer that with 415."""
    parts = [p.strip().lower() for p in (value or "").split(";")]
    if parts[0] != "application/json" or any(p not in ("charset=utf-8", 'charset="utf-8"') for p in parts[1:]):
        shown = repr(value[:60]) if value else "is missing"
        raise Problem(415, f"Content-Type {shown}: send application/json")


def check_content_length(value):
    """Raises 413 when a declared Content-Length is over the limit (before any body is read)."""
    if value is None:
        return
    try:
        n = int(value)
    except ValueError:
        raise Problem(400, "invalid Content-Length")
    if n > MAX_BODY:
        raise Problem(413, f"the body is {n} bytes; the limit is {MAX_BODY}",
                      headers={"Connection": "close"})


def too_large():
    return Problem(413, f"the body is over the {MAX_BODY}-byte limit", headers={"Connection": "close"})


def _not_json(name):
    raise ValueError(f"{name} is not JSON")


def _unique_keys(pairs):
    obj = {}
    for k, v in pairs:
        if k in obj:
            raise ValueError(f"duplicate field {k!r}")
        obj[k] = v
    return obj


def _pointer_token(s):
    return s.replace("~", "~0").replace("/", "~1")


def parse_inputs(body):
    """bytes → float32 tensor (n, 784), or raises Problem(400/422)."""
    try:
        # parse_int=float: every JSON number becomes a Python float (a 5000-digit integer becomes inf → 422).
        doc = json.loads(body, parse_int=float, parse_constant=_not_json, object_pairs_hook=_unique_keys)
    except (ValueError, RecursionError) as e:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise Problem(400, f"malformed JSON: {e}")
    if type(doc) is not dict:
        raise Problem(422, 'the body must be an object {"inputs": [[784 numbers], ...]}', field="")
    for k in doc:
        if k != "inputs":
            raise Problem(422, f"unknown field {k!r}", field="/" + _pointer_token(k))
    if "inputs" not in doc:
        raise Problem(422, "missing field 'inputs'", field="/inputs")
    rows = doc["inputs"]
    if type(rows) is not list:
        raise Problem(422, "inputs must be an array of rows", field="/inputs")
    if not 1 <= len(rows) <= MAX_ROWS:
        raise Problem(422, f"inputs has {len(rows)} rows; 1 to {MAX_ROWS} are allowed", field="/inputs")
    for i, row in enumerate(rows):
        if type(row) is not list or len(row) != FEATURES:
            what = f"{len(row)} values" if type(row) is list else "not an array"
            raise Problem(422, f"row {i} is {what}; each row must be an array of {FEATURES} numbers", field=f"/inputs/{i}")
        if set(map(type, row)) != {float}:
            j = next(j for j, v in enumerate(row) if type(v) is not float)
            raise Problem(422, f"inputs[{i}][{j}] is not a number", field=f"/inputs/{i}/{j}")
    arr = np.array(rows, dtype=np.float64)  # checked in float64, before rounding to float32
    ok = (arr >= 0.0) & (arr <= 1.0)      # False for NaN and ±inf as well
    if not ok.all():
        i, j = np.argwhere(~ok)[0].tolist()
        v = arr[i, j]
        why = "not finite" if not np.isfinite(v) else f"{float(v)!r} is outside [0, 1]"
        raise Problem(422, f"inputs[{i}][{j}]: {why}", field=f"/inputs/{i}/{j}")
    return torch.from_numpy(arr.astype(np.float32))


def response_body(doc):
    return json.dumps(doc, separators=(",", ":")).encode()
