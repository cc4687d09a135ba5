"""``makemore serve``: the web playground. Only the standard library at import time, so ``--help`` stays fast."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from makemore import flags
from makemore.errors import MakemoreError

__all__ = ["register"]

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def register(subparsers: Any) -> None:
    """Add the ``serve`` command to ``subparsers``."""
    p = subparsers.add_parser(
        "serve",
        help="a web playground: sample in the browser, see why each character, draw micrograd graphs",
        description="Serve a page (and its JSON API, documented at /docs) for a trained model. Binds to the "
        "loopback address unless --host says otherwise; there is no authentication.",
    )
    p.add_argument("--out", required=True, help="checkpoint directory")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=flags.port, default=8000, help="TCP port (default 8000)")
    p.add_argument("--last", action="store_true", help="use the last weights, not the best on val")
    p.set_defaults(func=cmd_serve)


def cmd_serve(args: argparse.Namespace) -> int:
    try:
        import uvicorn

        from makemore.serve.app import create_app
    except ImportError as e:
        raise MakemoreError(f"makemore serve needs the serve extra ({e.name} is missing): "
                            "pip install 'makemore[serve]'") from None
    from makemore.serve.engine import Engine

    engine = Engine(args.out, "last" if args.last else "best", threads=1)
    if args.host not in LOOPBACK:
        print(f"makemore: warning: serving on {args.host}: anyone who can reach this address can use it",
              file=sys.stderr)
    host = f"[{args.host}]" if ":" in args.host else args.host
    print(f"makemore playground: http://{host}:{args.port}/ (API docs at /docs; Ctrl-C to stop)", file=sys.stderr,
          flush=True)
    # On loopback, only requests naming this machine (a foreign domain resolving to 127.0.0.1 is refused).
    hosts = ["127.0.0.1", "localhost"] if args.host in ("127.0.0.1", "localhost") else None
    uvicorn.run(create_app(engine, hosts), host=args.host, port=args.port, log_level="warning", access_log=False)
    return 0
