#!/usr/bin/env bash
# Creates Benchmarks/peers/.venv with PyTorch (CPU build), safetensors, numpy, torchattacks and foolbox,
# plus the web stacks of the `bulwark serve` peers (serve_flask.py, serve_fastapi.py): flask, fastapi,
# uvicorn[standard] (httptools + uvloop) and gunicorn.
# Also creates Benchmarks/peers/.venv-lirpa for compare_certification.py: auto_LiRPA 0.3 (the newest on PyPI)
# requires torch < 1.13 and numpy < 2, which have no Python 3.11 wheels, so it gets its own Python 3.10 venv
# with torch 1.12.1 (PyPI's CUDA 10.2 build; runs on the CPU). Skipped, with a note, if no python3.10 is found
# or the install fails: compare_certification.py then runs in .venv with its own IBP/CROWN implementation.
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

# auto_LiRPA reference for compare_certification.py (optional).
PY310=""
for candidate in python3.10 "$HOME"/.pyenv/versions/3.10.*/bin/python3.10; do  # a pyenv shim may not run
  if "$candidate" -c "import venv" >/dev/null 2>&1; then PY310=$candidate; break; fi
done
if [ -n "$PY310" ]; then
  if { [ -x .venv-lirpa/bin/python ] || "$PY310" -m venv .venv-lirpa; } \
     && .venv-lirpa/bin/pip install -q "torch==1.12.1" "numpy<2" safetensors tqdm "auto_LiRPA==0.3"; then
    .venv-lirpa/bin/python -c "import auto_LiRPA, torch; print('peers: auto_LiRPA', auto_LiRPA.__version__, 'on torch', torch.__version__, 'ready in', '$(pwd)/.venv-lirpa')"
  else
    echo "peers: auto_LiRPA install failed; compare_certification.py will use its own IBP/CROWN (--backend own)" >&2
  fi
else
  echo "peers: no python3.10 found; skipping .venv-lirpa (compare_certification.py --backend own still works)" >&2
fi
