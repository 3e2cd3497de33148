"""``infobip-sandbox`` / ``python -m infobip_provider.sandbox``: serve the sandbox with uvicorn.

Prints ``Infobip sandbox listening on http://HOST:PORT`` once it accepts connections (``--port 0``
picks a free port), and stops cleanly on SIGINT or SIGTERM, saving ``--state`` first.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import sys
from collections.abc import Sequence
from types import FrameType

import uvicorn

from infobip_provider.sandbox.app import create_app
from infobip_provider.sandbox.config import SandboxConfig

SWITCH_INTERVAL = 0.001  # seconds

KEY_ENV = "INFOBIP_SANDBOX_API_KEY"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="infobip-sandbox", description="A local Infobip simulator.")
    parser.add_argument("--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8765, help="port; 0 picks a free one (default 8765)")
    parser.add_argument(
        "--api-key",
        action="append",
        dest="api_keys",
        metavar="KEY",
        help=f"an accepted API key (repeatable; default: comma-separated ${KEY_ENV})",
    )
    parser.add_argument(
        "--scoped-key",
        action="append",
        dest="scoped_keys",
        metavar="KEY=SCOPE,...",
        help="a key limited to these scopes (repeatable), e.g. KEY=people:manage,sms:message:send; "
        "it gets 403 from endpoints none of its scopes opens",
    )
    parser.add_argument(
        "--cooldown-scale", type=float, default=1.0, help="multiplies every cooldown (default 1)"
    )
    parser.add_argument("--state", metavar="FILE", help="JSON file to load the state from and save it to")
    parser.add_argument(
        "--undeliverable-prefix",
        action="append",
        dest="undeliverable_prefixes",
        metavar="DIGITS",
        help="SMS to numbers with this prefix end UNDELIVERABLE (repeatable; default 999)",
    )
    parser.add_argument("--delivery-delay", type=float, default=0.0, help="seconds an SMS stays PENDING")
    parser.add_argument("--balance", type=float, default=47.79, help="account balance to report")
    return parser


def parse_scoped_key(text: str) -> tuple[str, tuple[str, ...]]:
    """``KEY=scope1,scope2`` as ``(key, scopes)``; a key with no scopes authenticates but opens nothing."""
    key, sep, scopes = text.partition("=")
    if not sep or not key.strip():
        raise ValueError("--scoped-key takes KEY=SCOPE,SCOPE...")
    return key.strip(), tuple(s.strip() for s in scopes.split(",") if s.strip())


def config_from_args(args: argparse.Namespace) -> SandboxConfig:
    scoped = dict(parse_scoped_key(text) for text in args.scoped_keys or ())
    keys = args.api_keys or [k.strip() for k in os.environ.get(KEY_ENV, "").split(",") if k.strip()]
    return SandboxConfig(
        api_keys=keys,
        scoped_keys=scoped,
        cooldown_scale=args.cooldown_scale,
        state_file=args.state,
        undeliverable_prefixes=tuple(args.undeliverable_prefixes or ("999",)),
        delivery_delay=args.delivery_delay,
        balance=args.balance,
        freeze_heap=True,  # this process is the sandbox's own
    )


def _url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


class _AnnouncingServer(uvicorn.Server):
    """Prints the ready line once the listening socket is open."""

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.started and not self.should_exit:
            port = self.servers[0].sockets[0].getsockname()[1]
            print(f"Infobip sandbox listening on {_url(self.config.host, port)}", flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        config = config_from_args(args)
    except ValueError as exc:
        parser.error(f"{exc} (pass --api-key KEY or set ${KEY_ENV})")
    app = create_app(config)
    # The store thread holds the GIL while it works through a batch; a shorter switch interval (default
    # 5 ms) lets the event loop take it back sooner to stamp a request's arrival.
    sys.setswitchinterval(SWITCH_INTERVAL)
    server = _AnnouncingServer(
        uvicorn.Config(
            app,
            host=args.host,
            port=args.port,
            log_level="warning",
            access_log=False,
            lifespan="on",
            timeout_graceful_shutdown=3,
            date_header=False,  # the gate middleware stamps Date from the sandbox's own clock
        )
    )

    def stop(signum: int, frame: FrameType | None) -> None:
        # Before uvicorn takes the signals over, and again when it re-raises them after its shutdown.
        server.should_exit = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    try:
        server.run()
    finally:
        app.state.sandbox.save_if_dirty()
    return 0


if __name__ == "__main__":
    sys.exit(main())
