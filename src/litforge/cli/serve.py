"""``litforge serve``: an HTTP inference server over an export folder, with dynamic batching.

litforge serve runs/classifier/version_0/export
litforge serve exports/digits --port 8080 --max-batch-size 64 --batch-timeout 0.005
curl -s localhost:8000/predict -d '{"inputs": [[0, 0, 5, 13, 9, 1, 0, 0, ...]]}'
"""

from __future__ import annotations

import argparse
import importlib.util
import ipaddress
import os
import signal
import socket
from functools import partial
from pathlib import Path

from litforge.cli.command_parser import CommandParser
from litforge.cli.errors import UsageError
from litforge.serve.options import ServeOptions

DEFAULTS = ServeOptions()  # the one statement of each default (also used by the backends)

EPILOG = """endpoints:
  POST /predict   {"inputs": [[...], ...]} -> {"predictions": [...]} (one per row: a class, a value or a
                  list of values), plus "probabilities" and "labels" for a classifier
                  ({"texts": [...]} for text models; {"inputs": {"x": [...], "lengths": [...]}} by
                  name for a forward of several inputs); bad requests get a 4xx with {"detail": "..."}
  GET  /health    200 once the model is loaded, 503 before
  GET  /info      export.json (under "model") and the server settings
  GET  /metrics   requests, model calls and rows served (model calls < requests when batching works)

Binds 127.0.0.1 unless --host says otherwise (0.0.0.0 or :: to listen on every interface).
Bounded requests: --max-body-bytes, --max-rows, and --read-timeout for receiving each one.
SIGTERM or Ctrl+C: stop accepting, answer in-flight requests, then exit.
"""

LITSERVE_HOSTS = ("127.0.0.1", "0.0.0.0", "::")  # what LitServe accepts


def host_address(value: str) -> str:
    """``--host``: an IP address of this machine's interfaces (``0.0.0.0`` or ``::`` for all of them), or
    ``localhost`` (bound as 127.0.0.1)."""
    if value == "localhost":
        return "127.0.0.1"
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{value!r} is not an IP address: give 127.0.0.1 (or localhost), an address of this machine, or "
            "0.0.0.0 / :: for every interface"
        ) from None


def build_parser() -> CommandParser:
    parser = CommandParser(
        prog="litforge serve", description=__doc__.splitlines()[0].replace("``", ""), epilog=EPILOG
    )
    parser.add_argument("export_dir", type=Path, help="export folder written by 'litforge export'")
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        type=host_address,
        help="interface to bind: 127.0.0.1 (default; or localhost), 0.0.0.0 or :: for every interface, or "
        "one address of this machine",
    )
    parser.add_argument("--port", type=int, default=8000, help="TCP port, 1024-65535 (default: 8000)")
    parser.add_argument("--format", default=None, help="onnx, pt2 or torchscript (default: first available)")
    parser.add_argument(
        "--max-batch-size",
        type=int,
        default=DEFAULTS.max_batch_size,
        help="requests merged into one model call (1: off; default: %(default)s)",
    )
    parser.add_argument(
        "--batch-timeout",
        type=float,
        default=DEFAULTS.batch_timeout,
        help="longest wait (s) to fill a batch; the fastapi backend waits only for as many requests as "
        "the previous batch had, so a lone client never waits (default: %(default)s)",
    )
    parser.add_argument(
        "--workers", type=int, default=1, help="inference worker processes (default: %(default)s)"
    )
    parser.add_argument(
        "--max-rows",
        type=int,
        default=DEFAULTS.max_rows,
        help="rows allowed in one request (default: %(default)s)",
    )
    parser.add_argument(
        "--max-body-bytes",
        type=int,
        default=DEFAULTS.max_body_bytes,
        help="request body limit (default: 1 MiB)",
    )
    parser.add_argument(
        "--threads", type=int, default=None, help="intra-op threads per worker (default: runtime's)"
    )
    parser.add_argument(
        "--read-timeout",
        type=float,
        default=15.0,
        help="seconds a client has to send a whole request, headers and body; slower connections are "
        "closed (default: 15)",
    )
    parser.add_argument(
        "--backend",
        default="fastapi",
        choices=("fastapi", "litserve"),
        help="fastapi: batching in the HTTP process (default, faster here); litserve: LitServe workers",
    )
    parser.add_argument(
        "--log-level",
        default="warning",
        choices=("debug", "info", "warning", "error"),
        help="the HTTP server's log level (default: %(default)s)",
    )
    return parser


def main(command: str, argv: list[str]) -> int:
    """Validate the options, build the LitServe app and run it until SIGTERM / Ctrl+C."""
    args = build_parser().parse_args(argv)
    needed = {"litserve": "litserve", "fastapi": "uvicorn"}[args.backend]
    if importlib.util.find_spec(needed) is None:
        raise UsageError(
            f"litforge serve --backend {args.backend} needs {needed}: pip install 'litforge[serve]'"
        )
    if not 1024 <= args.port <= 65535:
        raise UsageError(f"--port must be in 1024-65535, got {args.port}")
    for flag, value in (
        ("--max-batch-size", args.max_batch_size),
        ("--workers", args.workers),
        ("--max-rows", args.max_rows),
        ("--max-body-bytes", args.max_body_bytes),
    ):
        if value < 1:
            raise UsageError(f"{flag} must be >= 1, got {value}")
    if not 0 <= args.batch_timeout < float("inf"):
        raise UsageError(f"--batch-timeout must be >= 0 seconds, got {args.batch_timeout}")
    if not 0 < args.read_timeout < float("inf"):
        raise UsageError(f"--read-timeout must be > 0 seconds, got {args.read_timeout}")
    if args.backend == "litserve" and args.host not in LITSERVE_HOSTS:
        raise UsageError(f"--host {args.host}: --backend litserve binds only {', '.join(LITSERVE_HOSTS)}")

    from litforge.export import metadata
    from litforge.export.artifact import Artifact
    from litforge.serve import read_deadline

    # Fail fast, with exit 2, on a folder or format that the server could not load.
    served_format = Artifact.open(args.export_dir, args.format, threads=1).format
    metadata.note_if_source_changed(args.export_dir)
    read_deadline.configure(args.read_timeout)
    options = ServeOptions(
        format=served_format,
        max_batch_size=args.max_batch_size,
        batch_timeout=args.batch_timeout,
        workers=args.workers,
        max_rows=args.max_rows,
        max_body_bytes=args.max_body_bytes,
        threads=args.threads,
    )
    _check_can_listen(args.host, args.port)
    print(
        f"serving {args.export_dir} on http://{args.host}:{args.port} once GET /health answers 200 (it listens "
        "within seconds and loads the model; Ctrl+C or SIGTERM stops)",
        flush=True,
    )
    if args.backend == "fastapi":
        from litforge.serve.fastapi_backend import run

        run(args.export_dir.resolve(), options, args.host, args.port, args.log_level)
        return 0
    from litforge.serve.litserve_backend import build_server

    server = build_server(args.export_dir, options)
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, partial(_graceful_stop, os.getpid()))
    server.run(
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        generate_client_file=False,
        http=read_deadline.RequestDeadlineProtocol,  # passed on to uvicorn.Config
    )
    return 0


def _check_can_listen(host: str, port: int) -> None:
    """Exit 2 in one line when the address is taken or not this machine's, before claiming to serve
    (uvicorn would log its own error and exit 3)."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
            probe.bind(address)
    except OSError as error:
        reason = error.strerror or str(error)
        raise UsageError(f"--host {host} --port {port}: cannot listen there: {reason}") from None


def _graceful_stop(server_pid: int, signum: int, frame: object) -> None:
    """SIGTERM or Ctrl+C -> LitServe's Ctrl+C path: HTTP workers drain in-flight requests, then the model
    workers stop. The processes LitServe forked (its HTTP server, its queue's manager) inherit this handler
    and leave the stopping to the server: a stop signal sent to all of them at once (Ctrl+C in a terminal,
    systemd's default ``KillMode``) would otherwise end the manager under the model workers, each process
    printing a traceback. The HTTP server still drains first: uvicorn catches the signal while it serves."""
    if os.getpid() == server_pid:
        raise KeyboardInterrupt
