"""Run one loopback provider server on 127.0.0.1 until stdin closes or the process is stopped.

    python -m connectors.channels.loopback sendgrid [--no-record]

Prints `URL http://127.0.0.1:PORT` on the first line; `GET /_loopback/stats` gives counts.
The credentials it accepts are the classes' test defaults (not secrets)."""

from __future__ import annotations

import argparse
import sys

from connectors.channels.loopback import LineLoopback, SendGridLoopback, TwilioLoopback

SERVERS = {"sendgrid": SendGridLoopback, "line": LineLoopback, "twilio": TwilioLoopback}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m connectors.channels.loopback", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("provider", choices=sorted(SERVERS))
    parser.add_argument("--no-record", action="store_true", help="count accepted messages, keep none (benches)")
    args = parser.parse_args()
    with SERVERS[args.provider](record=not args.no_record) as server:
        print(f"URL {server.url}", flush=True)
        sys.stdin.read()  # until the parent closes our stdin


if __name__ == "__main__":
    main()
