#!/usr/bin/env python3
"""Flask peer of `bulwark serve`: POST /v1/models/{name}/predict over HTTPS, the same API and checks
(serve_common.py holds the model, key check and validation shared with serve_fastapi.py).

1. Werkzeug's threaded server (the default; one thread per connection). Note that werkzeug sends
   `Connection: close` on every response, so under wrk each request pays a full TLS handshake; it is
   Flask's development server, and gunicorn (2.) is the production-style configuration.

    .venv/bin/python serve_flask.py --cert c.pem --key k.pem --api-key-file key.txt \
        [--model ../../models/mlp-standard.safetensors] [--name mlp-standard] [--port 8443] [--torch-threads 1]

2. gunicorn with N worker processes and TLS. Configuration comes from the environment, because gunicorn
   imports the app itself (`create_app()` with no arguments reads BULWARK_PEER_*). Use the gthread worker:
   the default sync worker closes the connection after every response, so every wrk request would pay
   a new TLS handshake.

    cd Benchmarks/peers
    BULWARK_PEER_MODEL=../../models/mlp-standard.safetensors BULWARK_PEER_API_KEY_FILE=/tmp/key.txt \
    BULWARK_PEER_TORCH_THREADS=1 \
    .venv/bin/gunicorn -w 2 -k gthread --threads 8 -b 127.0.0.1:8443 \
        --certfile c.pem --keyfile k.pem --no-control-socket 'serve_flask:create_app()'

   (--no-control-socket: recent gunicorn, 27 here, otherwise opens ~/.gunicorn/gunicorn.ctl.)

Torch threads: torch.set_num_threads(--torch-threads, else BULWARK_PEER_TORCH_THREADS, else 1) in every
worker process, so N gunicorn workers use N·threads cores for GEMMs (plus Python threads doing JSON).
Request logging is off unless --access-log (gunicorn: --access-logfile -).
"""
import argparse
import logging
import ssl

from flask import Flask, Response, g, request
from werkzeug.exceptions import HTTPException

from serve_common import (MAX_BODY, NO_STORE, PROBLEM_TYPE, KeyCheck, Problem, ServedModel, add_common_flags,
                          check_content_length, check_content_type, env_config, parse_inputs, problem_body,
                          read_api_key, response_body, too_large)


def create_app(model=None, name=None, api_key_file=None, torch_threads=None):
    """App factory: arguments override the BULWARK_PEER_* environment (see serve_common.env_config)."""
    cfg = env_config(model=model, name=name, api_key_file=api_key_file, torch_threads=torch_threads)
    served = ServedModel(cfg["model"], cfg["name"], cfg["torch_threads"])
    keys = KeyCheck(read_api_key(cfg["api_key_file"]))

    app = Flask(__name__)
    # Bodies without Content-Length (chunked): werkzeug stops reading at MAX_CONTENT_LENGTH without an
    # error, so allow one byte more and treat a body that reaches it as too large.
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY + 1
    app.extensions["bulwark_model"] = served

    def problem(status, detail, field=None, headers=None, kind=None):
        headers = {**NO_STORE, **(headers or {})}
        has_body = request.content_length or request.headers.get("Transfer-Encoding")
        if has_body and not g.get("body_read"):
            headers["Connection"] = "close"  # the unread body must not be parsed as the next request
        return Response(problem_body(status, detail, field, kind), status=status, headers=headers, mimetype=PROBLEM_TYPE)

    @app.errorhandler(Problem)
    def on_problem(e):
        return problem(e.status, e.detail, e.field, e.headers, e.kind)

    @app.errorhandler(HTTPException)
    def on_http_exception(e):  # 404 for other paths, 405 + Allow, 413 from MAX_CONTENT_LENGTH
        headers = {k: v for k, v in e.get_headers() if k.lower() != "content-type"}
        return problem(e.code, e.description, headers=headers)

    @app.post("/v1/models/<name>/predict")
    def predict(name):
        keys.check(request.headers.getlist("Authorization"), request.headers.getlist("X-API-Key"))
        if name != served.name:
            raise Problem(404, f"no model named {name!r}")
        check_content_type(request.headers.get("Content-Type"))
        check_content_length(request.headers.get("Content-Length"))
        body = request.get_data(cache=False)
        if len(body) > MAX_BODY:
            raise too_large()
        g.body_read = True
        x = parse_inputs(body)
        return Response(response_body(served.predict(x)), headers=NO_STORE, mimetype="application/json")

    return app


def tls_context(cert, key):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2  # as bulwark serve
    ctx.set_alpn_protocols(["http/1.1"])
    ctx.load_cert_chain(cert, key)
    return ctx


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_flags(parser)
    args = parser.parse_args()
    app = create_app(args.model, args.name, args.api_key_file, args.torch_threads)
    if not args.access_log:
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
    served = app.extensions["bulwark_model"]
    print(f"serve_flask: model {served.name} sha256 {served.sha256} on https://{args.host}:{args.port}"
          f"/v1/models/{served.name}/predict (werkzeug threaded)", flush=True)
    app.run(host=args.host, port=args.port, ssl_context=tls_context(args.cert, args.key), threaded=True,
            debug=False, use_reloader=False)


if __name__ == "__main__":
    main()
