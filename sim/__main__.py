"""``python -m sim``: run the simulator as a real threaded HTTP server."""

from __future__ import annotations

import argparse
import sys

from werkzeug.serving import make_server

from . import create_app
from .seed import seed_demo
from .state import EXTENSION


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sim", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8099)
    parser.add_argument("--profile", choices=("documented", "legacy"), default="documented")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--seed-demo", action="store_true", help="create the demo data set")
    args = parser.parse_args(argv)
    app = create_app({"profile": args.profile, "seed": args.seed})
    if args.seed_demo:
        demo = seed_demo(app.extensions[EXTENSION])
        print(f"demo key: {demo['key']}", flush=True)
    server = make_server(args.host, args.port, app, threaded=True)
    print(f"simulator listening on http://{args.host}:{server.port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
