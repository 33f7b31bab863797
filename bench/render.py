"""Time message rendering: every step of every shipped scenario, for N customers each.

What the nightly delivery does per message before handing it to a channel: the subject,
the text part and (for e-mail) the HTML part, with the legal footer check. Customers
differ in name and id, so nothing can be served from a cache of finished messages.

    python -m bench.render --messages 5000
"""

from __future__ import annotations

import argparse
import time
from collections import Counter
from datetime import date

import kizuna  # noqa: F401
from campaigns.render import Renderer
from campaigns.schema import load_scenarios
from kizuna.config import Settings

SEND_DATE = date(2026, 11, 24)
NAMES = [("山田", "花子"), ("佐藤", "太郎"), ("鈴木", "美咲"), ("高橋", "健"), ("田中", "由美")]


def customer(i: int, scenario_id: str, step_id: str) -> dict:
    last, first = NAMES[i % len(NAMES)]
    return {"customer_id": f"C{i:08d}", "last_name": last, "first_name": f"{first}{i}",
            "email": f"c{i}@example.jp", "line_user_id": f"U{i:032x}", "phone": "+819012345678",
            "postal_code": "150-0001", "prefecture": "東京都", "city": "渋谷区", "address_line": "神宮前1-2-3",
            "scenario_id": scenario_id, "step_id": step_id}


def bench(messages: int) -> dict:
    settings = Settings()
    steps = [(s, st) for s in load_scenarios() for st in s.steps]
    started = time.perf_counter()
    renderer = Renderer(settings)
    setup = time.perf_counter() - started
    by_channel: Counter = Counter()
    seconds: Counter = Counter()
    html_bytes = 0
    for i in range(messages):
        scenario, step = steps[i % len(steps)]
        t = time.perf_counter()
        rendered = renderer.render(step, customer(i, scenario.id, step.id), f"S{i:012d}", SEND_DATE)
        seconds[step.channel] += time.perf_counter() - t
        by_channel[step.channel] += 1
        if step.channel == "email":
            html_bytes = max(html_bytes, len(rendered.html.encode()))
    total = sum(seconds.values())
    return {"messages": messages, "setup_seconds": setup, "seconds": total, "per_message_ms": total / messages * 1000,
            "email_ms": seconds["email"] / by_channel["email"] * 1000 if by_channel["email"] else None,
            "by_channel": dict(by_channel), "largest_html_bytes": html_bytes}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.render", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=5000, help="messages to render (default 5000)")
    args = parser.parse_args()
    r = bench(args.messages)
    print(f"{r['messages']:,} messages in {r['seconds']:.2f} s: {r['per_message_ms']:.3f} ms each "
          f"(e-mail {r['email_ms']:.3f} ms), set-up {r['setup_seconds'] * 1000:.0f} ms; "
          f"largest HTML part {r['largest_html_bytes']:,} bytes; by channel {r['by_channel']}")


if __name__ == "__main__":
    main()
