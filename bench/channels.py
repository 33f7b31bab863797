"""Throughput of the e-mail channel: messages per second dispatched to a loopback SendGrid.

For each volume it streams generated messages (never all in memory) through
`SendGridChannel.send_batch` (only the time inside `send_batch` counts) in engine-sized batches (10,000 messages, split into
requests of 1,000 personalizations, `--concurrency` requests in flight) against the
loopback SendGrid running in its own process (like the real provider, it does not
share our interpreter). Baselines measured in the same run, on the same messages:
`serialise only` builds the same request bodies and JSON-encodes them (no HTTP), and
`raw urllib` POSTs those same bodies with plain urllib from the same thread pool:
the floor the connector's own work adds to. Peak memory is the process's maximum
resident set after each volume (volumes run smallest first: flat = no growth).
Prints a table and writes JSON to bench/results/.

    python -m bench.channels [--volumes 10000 50000 200000] [--concurrency 4]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Iterator

from pydantic import SecretStr

from connectors.channels.base import Message
from connectors.channels.loopback import SendGridLoopback
from connectors.channels.policy import DeliveryPolicy
from connectors.channels.sendgrid import SendGridChannel

BENCH_DIR = Path(__file__).parent
BATCH = 10_000
NAMES = ["山田 花子", "佐藤 太郎", "髙橋 一郎", "渡邊 美咲", "伊藤 さくら"]
API_KEY = SendGridLoopback().api_key  # the loopback's test key, not a secret


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def messages(start: int, count: int) -> Iterator[Message]:
    """A realistic F2 thank-you e-mail per customer (≈1 kB of text and HTML, own name and unsubscribe link)."""
    for i in range(start, start + count):
        name = NAMES[i % len(NAMES)]
        url = f"https://kizuna-organics.example/unsubscribe?t=S{i:08d}"
        paragraphs = ["このたびは絆オーガニクスの青汁をお買い上げいただき、誠にありがとうございます。",
                      "商品は明日発送予定です。届きましたら、まずは一杯、朝食と一緒にお試しください。",
                      "ご不明な点はお気軽にお問い合わせください。"]
        footer = ("\n--\n絆オーガニクス株式会社 (Kizuna Organics K.K.)\n〒150-0001 東京都渋谷区神宮前1-2-3\n"
                  f"support@kizuna-organics.example / 0120-000-000\n配信停止: {url}\n")
        yield Message(
            send_id=f"S{i:08d}", channel="email", customer_id=f"C{i:08d}", address=f"c{i}@example.jp",
            recipient_name=name, subject=f"{name.split()[0]}様、ご購入ありがとうございます",
            body_text=f"{name}様\n\n" + "\n\n".join(paragraphs) + footer,
            body_html=f"<p>{name}様</p>" + "".join(f"<p>{p}</p>" for p in paragraphs)
            + f"<p>絆オーガニクス株式会社</p><a href=\"{url}\">配信停止</a>",
            scenario_id="f2_standard", step_id="thank_you", extra={"unsubscribe_url": url})


class Server:
    """The loopback SendGrid in a child process."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "connectors.channels.loopback", "sendgrid", "--no-record"],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline().split()
        assert line and line[0] == "URL", f"loopback server did not start: {line}"
        self.url = line[1]

    def accepted(self) -> int:
        with urllib.request.urlopen(f"{self.url}/_loopback/stats", timeout=5) as r:
            return json.loads(r.read())["accepted"]

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=10)


def run_channel(channel: SendGridChannel, volume: int) -> tuple[float, Counter]:
    """Time spent in `send_batch` only (rendering the messages is the engine's work, not the channel's)."""
    tally: Counter = Counter()
    elapsed = 0.0
    for start in range(0, volume, BATCH):
        batch = list(messages(start, min(BATCH, volume - start)))
        started = time.perf_counter()
        outcomes = channel.send_batch(batch)
        elapsed += time.perf_counter() - started
        tally.update(o.status for o in outcomes)
    return elapsed, tally


def run_serialise_only(channel: SendGridChannel, volume: int) -> float:
    elapsed = 0.0
    for start in range(0, volume, BATCH):
        batch = list(messages(start, min(BATCH, volume - start)))
        started = time.perf_counter()
        requests, _ = channel.build_requests(batch)
        for _, body in requests:
            json.dumps(body).encode()
        elapsed += time.perf_counter() - started
    return elapsed


def run_raw_urllib(channel: SendGridChannel, url: str, volume: int, concurrency: int) -> float:
    """Only the HTTP part: bodies are built and encoded beforehand (not timed), then POSTed with urllib."""
    def post(data: bytes) -> int:
        request = urllib.request.Request(f"{url}/v3/mail/send", data=data, method="POST", headers={
            "Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status

    elapsed = 0.0
    for start in range(0, volume, BATCH):
        requests, _ = channel.build_requests(list(messages(start, min(BATCH, volume - start))))
        bodies = [json.dumps(body).encode() for _, body in requests]
        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=concurrency) as pool:
            assert set(pool.map(post, bodies)) == {202}
        elapsed += time.perf_counter() - started
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.channels", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--volumes", type=int, nargs="+", default=[10_000, 50_000, 200_000],
                        help="messages per run, smallest first (default: 10000 50000 200000)")
    parser.add_argument("--concurrency", type=int, default=4, help="requests in flight (default: 4)")
    args = parser.parse_args()

    server = Server()
    try:
        channel = SendGridChannel(SecretStr(API_KEY), sender_name="絆オーガニクス株式会社",
                                  sender_email="info@kizuna-organics.example", host=server.url,
                                  policy=DeliveryPolicy(concurrency=args.concurrency, timeout=30))
        report = []
        for volume in sorted(args.volumes):
            before = server.accepted()
            seconds, tally = run_channel(channel, volume)
            accepted = server.accepted() - before
            assert tally == Counter({"sent": volume}) and accepted == volume, (tally, accepted)
            serialise = run_serialise_only(channel, volume)
            raw = run_raw_urllib(channel, server.url, volume, args.concurrency)
            report.append({"volume": volume, "concurrency": args.concurrency, "channel_seconds": seconds,
                           "channel_msgs_per_s": volume / seconds, "serialise_only_msgs_per_s": volume / serialise,
                           "raw_urllib_msgs_per_s": volume / raw, "requests_per_s": volume / 1000 / seconds,
                           "accepted_by_server": accepted, "peak_rss_mib": _peak_rss_mib()})
    finally:
        server.close()
    _print(report)
    out = BENCH_DIR / "results" / f"channels-{datetime.now():%Y%m%d-%H%M%S}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(f"\nwritten: {out}")


def _print(report: list[dict]) -> None:
    header = ["messages", "channel msg/s", "serialise-only", "raw urllib", "requests/s", "accepted", "peak MiB"]
    print("  ".join(f"{h:>14}" for h in header))
    for r in report:
        cells = [f"{r['volume']:,}", f"{r['channel_msgs_per_s']:,.0f}", f"{r['serialise_only_msgs_per_s']:,.0f}",
                 f"{r['raw_urllib_msgs_per_s']:,.0f}", f"{r['requests_per_s']:.1f}", f"{r['accepted_by_server']:,}",
                 f"{r['peak_rss_mib']:.0f}"]
        print("  ".join(f"{c:>14}" for c in cells))


if __name__ == "__main__":
    main()
