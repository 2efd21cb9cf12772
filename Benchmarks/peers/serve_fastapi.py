#!/usr/bin/env python3
"""FastAPI + uvicorn peer of `bulwark serve`: POST /v1/models/{name}/predict over HTTPS, the same API
and checks (serve_common.py holds the model, key check and validation shared with serve_flask.py).

    .venv/bin/python serve_fastapi.py --cert c.pem --key k.pem --api-key-file key.txt \
        [--workers 2] [--torch-threads 1] [--model ../../models/mlp-standard.safetensors] [--port 8443]

`--workers N` runs N uvicorn worker processes (uvicorn.run(workers=N)); each loads the model and calls
torch.set_num_threads(--torch-threads, default 1). The settings reach the workers through BULWARK_PEER_*
environment variables, so the equivalent plain uvicorn command line is:

    cd Benchmarks/peers
    BULWARK_PEER_MODEL=../../models/mlp-standard.safetensors BULWARK_PEER_API_KEY_FILE=/tmp/key.txt \
    .venv/bin/uvicorn serve_fastapi:create_app --factory --workers 2 --host 127.0.0.1 --port 8443 \
        --ssl-certfile c.pem --ssl-keyfile k.pem --no-access-log

The handler authenticates in an async dependency, reads the body itself (bounded: 413 past the limit even
without Content-Length), then parses, validates and runs torch in the threadpool (run_in_threadpool), so
the event loop never does CPU work. uvicorn picks httptools + uvloop when installed ("uvicorn[standard]",
as setup.sh installs); --http h11 / --loop asyncio select the pure-Python ones.
"""
import argparse
import uvicorn
from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from serve_common import (MAX_BODY, NO_STORE, PROBLEM_TYPE, KeyCheck, Problem, ServedModel, add_common_flags,
                          check_content_length, check_content_type, env_config, export_env, parse_inputs,
                          problem_body, read_api_key, response_body, too_large)


def create_app(model=None, name=None, api_key_file=None, torch_threads=None):
    """App factory: arguments override the BULWARK_PEER_* environment (see serve_common.env_config)."""
    cfg = env_config(model=model, name=name, api_key_file=api_key_file, torch_threads=torch_threads)
    served = ServedModel(cfg["model"], cfg["name"], cfg["torch_threads"])
    keys = KeyCheck(read_api_key(cfg["api_key_file"]))

    app = FastAPI(title="bulwark peer (FastAPI)", openapi_url=None, docs_url=None, redoc_url=None)
    app.state.model = served

    def problem(request, status, detail, field=None, headers=None, kind=None):
        headers = {**NO_STORE, **(headers or {})}
        has_body = request.headers.get("content-length", "0") != "0" or "transfer-encoding" in request.headers
        if has_body and not getattr(request.state, "body_read", False):
            headers["Connection"] = "close"  # the unread body must not be parsed as the next request
        return Response(problem_body(status, detail, field, kind), status_code=status, headers=headers,
                        media_type=PROBLEM_TYPE)

    @app.exception_handler(Problem)
    async def on_problem(request: Request, e: Problem):
        return problem(request, e.status, e.detail, e.field, e.headers, e.kind)

    @app.exception_handler(StarletteHTTPException)
    async def on_http_exception(request: Request, e: StarletteHTTPException):  # other paths, 405 + Allow
        return problem(request, e.status_code, str(e.detail), headers=e.headers)

    @app.exception_handler(RequestValidationError)
    async def on_validation(request: Request, e: RequestValidationError):
        return problem(request, 422, str(e.errors()))

    async def require_key(request: Request):
        keys.check(request.headers.getlist("authorization"), request.headers.getlist("x-api-key"))

    def infer(body):  # runs in the threadpool: JSON parse, validation, torch, JSON encode
        return response_body(served.predict(parse_inputs(body)))

    @app.post("/v1/models/{name}/predict", dependencies=[Depends(require_key)])
    async def predict(name: str, request: Request):
        if name != served.name:
            raise Problem(404, f"no model named {name!r}")
        check_content_type(request.headers.get("content-type"))
        check_content_length(request.headers.get("content-length"))
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > MAX_BODY:
                raise too_large()
            chunks.append(chunk)
        request.state.body_read = True
        return Response(await run_in_threadpool(infer, b"".join(chunks)), headers=NO_STORE, media_type="application/json")

    return app


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_flags(parser)
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes (default 1)")
    parser.add_argument("--http", default="auto", choices=["auto", "h11", "httptools"])
    parser.add_argument("--loop", default="auto", choices=["auto", "asyncio", "uvloop"])
    args = parser.parse_args()
    cfg = env_config(model=args.model, name=args.name, api_key_file=args.api_key_file, torch_threads=args.torch_threads)
    read_api_key(cfg["api_key_file"])  # fail here, not in every worker
    export_env(cfg)
    print(f"serve_fastapi: https://{args.host}:{args.port}/v1/models/{{name}}/predict, {args.workers} uvicorn "
          f"worker(s), torch threads {cfg['torch_threads']} each", flush=True)
    uvicorn.run("serve_fastapi:create_app", factory=True, host=args.host, port=args.port, workers=args.workers,
                ssl_certfile=args.cert, ssl_keyfile=args.key, http=args.http, loop=args.loop,
                access_log=args.access_log, log_level="info" if args.access_log else "warning")


if __name__ == "__main__":
    main()
