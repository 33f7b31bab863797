"""Run one loopback provider server on 127.0.0.1 until stdin closes or the process is stopped.

    python -m connectors.channels.loopback sendgrid [--no-record] [--fault-rate 0.2 --seed 7]
        [--events-to http://127.0.0.1:8787/webhooks/sendgrid --events-key key.pem [--delivered-after 1]]
    python -m connectors.channels.loopback line [--fault-rate 0.2 --seed 7] [--key-life 86400]
    python -m connectors.channels.loopback shopify --exports data/exports [--throttle-share 0.3]
        [--restore-rate 50] [--night-index 0]

Prints `URL http://127.0.0.1:PORT` on the first line. `/_loopback/...` drives it from another
process: `GET stats` (counts, faults played, events pending), `GET deliveries` (accepted
recipients counted by send id / LINE user id), `POST reset`, `POST faults` (a JSON list of
faults to play next), `POST advance` (`{"seconds": N}`: move the provider's clock ahead);
shopify also `POST next-night` (show the next night's changes), `POST fail-bulk`
(`{"error_code": "INTERNAL_SERVER_ERROR", "count": 1}`) and `GET shop` (night, clock, counts).

`--fault-rate P` plays, on each provider request with probability P, one fault of the mix
(`--fault-kinds`, default all): 429 with a short Retry-After, 500 before or after accepting,
a time-out before or after accepting (the answer held `--fault-hold` seconds, longer than
the client waits), a dropped connection before or after accepting. `--seed` makes the mix
repeatable. The credentials it accepts are the classes' test defaults (not secrets).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from connectors.channels.loopback import LineLoopback, SendGridLoopback, ShopifyLoopback, TwilioLoopback
from connectors.channels.loopback.server import FAULT_KINDS

SERVERS = {"sendgrid": SendGridLoopback, "line": LineLoopback, "twilio": TwilioLoopback, "shopify": ShopifyLoopback}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m connectors.channels.loopback", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("provider", choices=sorted(SERVERS))
    parser.add_argument("--no-record", action="store_true", help="count accepted messages, keep none (benches)")
    parser.add_argument("--fault-rate", type=float, default=0.0, metavar="P",
                        help="share of provider requests that get a random fault (0..1; default 0)")
    parser.add_argument("--seed", type=int, default=None, help="seed of the random fault mix")
    parser.add_argument("--fault-kinds", default=",".join(FAULT_KINDS), metavar="K1,K2",
                        help=f"the faults to draw from (default: all): {', '.join(FAULT_KINDS)}")
    parser.add_argument("--fault-hold", type=float, default=1.5, metavar="SECONDS",
                        help="how long a time-out fault holds the answer (default 1.5; make it longer than the "
                             "client's time-out)")
    parser.add_argument("--events-to", metavar="URL", help="sendgrid: post signed `processed` events for every "
                        "accepted recipient to this Event Webhook URL (e.g. `kizuna webhook serve`)")
    parser.add_argument("--events-key", type=Path, metavar="PEM", help="sendgrid: the EC P-256 private key (PEM "
                        "file) that signs the events; the webhook trusts its public key")
    parser.add_argument("--events-every", type=float, default=0.2, metavar="SECONDS",
                        help="sendgrid: how often queued events are posted (default 0.2)")
    parser.add_argument("--delivered-after", type=float, default=None, metavar="SECONDS",
                        help="sendgrid: also post a `delivered` event this long after each `processed` one")
    parser.add_argument("--key-life", type=float, default=None, metavar="SECONDS",
                        help="line: how long a retry key is honoured (default 86400, LINE's 24 hours)")
    parser.add_argument("--exports", type=Path, metavar="DIR", help="shopify: the generated shop's nightly exports "
                        "(kizuna's format) the twin serves, e.g. data/exports")
    parser.add_argument("--throttle-share", type=float, default=0.0, metavar="P",
                        help="shopify: share of GraphQL requests answered THROTTLED (0..1; default 0)")
    parser.add_argument("--restore-rate", type=float, default=50.0, metavar="POINTS",
                        help="shopify: points per second the cost bucket (1,000 points) restores (default 50)")
    parser.add_argument("--night-index", type=int, default=0, metavar="N",
                        help="shopify: the night shown first (0: the first folder, the full history)")
    return parser


def build(args: argparse.Namespace, parser: argparse.ArgumentParser) -> Any:
    """The server the arguments describe (not started); a wrong combination is a usage error."""
    kinds = [k.strip() for k in args.fault_kinds.split(",") if k.strip()]
    unknown = sorted(set(kinds) - set(FAULT_KINDS))
    if unknown:
        parser.error(f"unknown fault kind(s) {', '.join(unknown)}; kinds are: {', '.join(FAULT_KINDS)}")
    if not 0.0 <= args.fault_rate <= 1.0:
        parser.error(f"--fault-rate is a probability between 0 and 1, not {args.fault_rate}")
    if (args.events_to or args.events_key) and args.provider != "sendgrid":
        parser.error("--events-to and --events-key are for the sendgrid server only")
    if args.delivered_after is not None and not args.events_to:
        parser.error("--delivered-after needs --events-to (the webhook the events go to)")
    if bool(args.events_to) != bool(args.events_key):
        parser.error("--events-to and --events-key go together: the URL to post to and the key that signs")
    if args.key_life is not None and args.provider != "line":
        parser.error("--key-life is for the line server only")
    shopify_only = args.exports or args.throttle_share or args.restore_rate != 50.0 or args.night_index
    if shopify_only and args.provider != "shopify":
        parser.error("--exports, --throttle-share, --restore-rate and --night-index are for the shopify server only")
    kwargs: dict[str, Any] = {"record": not args.no_record, "fault_rate": args.fault_rate, "seed": args.seed,
                              "fault_kinds": kinds, "fault_hold": args.fault_hold}
    if args.key_life is not None:
        kwargs["key_life"] = args.key_life
    if args.provider == "shopify":
        if args.exports is None or not args.exports.is_dir():
            parser.error("shopify needs --exports: the folder of a generated shop's nightly exports "
                         "(`kizuna generate`), which the twin serves")
        if not 0.0 <= args.throttle_share <= 1.0:
            parser.error(f"--throttle-share is a probability between 0 and 1, not {args.throttle_share}")
        try:
            return ShopifyLoopback(args.exports, throttle_share=args.throttle_share, restore_rate=args.restore_rate,
                                   night_index=args.night_index, **kwargs)
        except (ValueError, OSError) as exc:
            parser.error(f"shopify: {exc}")
    return SERVERS[args.provider](**kwargs)


def _signing_key(path: Path, parser: argparse.ArgumentParser) -> Any:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        parser.error(f"--events-key {path}: not a readable unencrypted PEM private key ({exc})")
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        parser.error(f"--events-key {path}: SendGrid signs with an EC P-256 key; this is another kind of key")
    return key


def main(argv: list[str] | None = None) -> None:
    parser = _parser()
    args = parser.parse_args(argv)
    server = build(args, parser)
    key = _signing_key(args.events_key, parser) if args.events_key else None
    with server:
        if args.events_to:
            server.send_events_to(args.events_to, key, every=args.events_every, delivered_after=args.delivered_after)
        print(f"URL {server.url}", flush=True)
        sys.stdin.read()  # until the parent closes our stdin


if __name__ == "__main__":
    main()
