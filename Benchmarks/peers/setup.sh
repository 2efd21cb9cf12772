#!/usr/bin/env bash
# Creates Benchmarks/peers/.venv with PyTorch (CPU build), safetensors, numpy, torchattacks and foolbox,
# plus the web stacks of the `bulwark serve` peers (serve_flask.py, serve_fastapi.py): flask, fastapi,
# uvicorn[standard] (httptools + uvloop) and gunicorn.
# Not run by CI. Uses a local wheel directory if pip is configured with one (find-links).
set -euo pipefail
cd "$(dirname "$0")"
python3 -m venv .venv
.venv/bin/pip install -q --upgrade pip >/dev/null 2>&1 || true
.venv/bin/pip install -q "torch>=2.0" safetensors numpy torchattacks foolbox \
  || { .venv/bin/pip install -q --index-url https://download.pytorch.org/whl/cpu torch safetensors numpy torchattacks \
       && .venv/bin/pip install -q foolbox; }
.venv/bin/pip install -q flask fastapi "uvicorn[standard]" gunicorn
.venv/bin/python -c "import torch; print('peers: torch', torch.__version__, 'ready in', '$(pwd)/.venv')"
