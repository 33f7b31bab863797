"""The fault drill's accounting (`bench/faults.py`): the providers' counts against the send ledger.

The drill is only as honest as this comparison: a second copy, a message the ledger calls sent
that no provider got, a delivery the ledger says was not made, and the rule that keeps each
`unknown` must all show. A ledger and warehouse are written by hand with one row per case.
"""

from __future__ import annotations

import csv
import sys
from collections import Counter
from datetime import date, datetime
from pathlib import Path

import duckdb

from campaigns import ledger

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # bench/ is not an installed package
from bench.faults import _audit, _listed  # noqa: E402

RUN = date(2026, 11, 23)
HANDED = datetime(2026, 11, 23, 1, 0)  # UTC, naive, like the ledger's handed_over_at


def _setup(folder: Path, rows: list[tuple], line_users: dict[str, str], newest_event_local: datetime,
           events_for: list[str]) -> None:
    con = duckdb.connect(str(folder / "warehouse.duckdb"))
    con.execute("create schema marts")
    con.execute("create schema raw")
    con.execute("create table marts.dim_customers (customer_id varchar, line_user_id varchar)")
    con.executemany("insert into marts.dim_customers values (?, ?)", list(line_users.items()))
    con.execute("create table raw.message_events (send_id varchar, received_at timestamp)")
    con.executemany("insert into raw.message_events values (?, ?)", [(s, newest_event_local) for s in events_for])
    ledger.attach(con, folder / "ledger.duckdb")
    for send_id, channel, customer, status, attempts, detail in rows:
        con.execute("""insert into ledger.sends (send_id, scenario_id, step_id, customer_id, anchor_date, channel,
                       due_date, run_date, status, detail, planned_at, updated_at, handed_over_at, attempts)
                       values (?, 's', ?, ?, ?, ?, ?, ?, ?, ?, now(), now(), ?, ?)""",
                    [send_id, send_id, customer, RUN, channel, RUN, RUN, status, detail, HANDED, attempts])
    con.close()


def test_duplicates_lost_wrong_and_unknown_are_each_counted(tmp_path: Path) -> None:
    rows = [
        ("E-ok", "email", "C1", "sent", 1, "accepted (202)"),
        ("E-twice", "email", "C1", "sent", 1, "accepted (202)"),
        ("E-never", "email", "C1", "sent", 1, "accepted (202)"),
        ("E-skipped", "email", "C1", "skipped", 0, "no_consent"),
        ("E-stuck", "email", "C1", "planned", 0, None),
        ("E-failed", "email", "C1", "failed", 1, "SendGrid refused the request (400)"),
        ("E-limit-unknown", "email", "C1", "unknown", 5, "SendGrid answered 500"),  # KIZUNA_RECONCILE_MAX_ATTEMPTS
        ("E-late-unknown", "email", "C1", "unknown", 1, "SendGrid answered 500"),
        ("E-evented-unknown", "email", "C1", "unknown", 1, "SendGrid answered 500"),
        ("L-a", "line", "C2", "sent", 1, "accepted"),
        ("L-b", "line", "C2", "sent", 1, "accepted"),
        ("L-c", "line", "C3", "sent", 1, "accepted"),
        ("L-expired", "line", "C4", "unknown", 1, "process stopped ... idempotency key has expired: not resent"),
        ("D-ok", "dm", "C1", "sent", 1, "listed"),
        ("D-twice", "dm", "C1", "sent", 1, "listed"),
    ]
    # The newest event arrived before the hand-over (shop time = UTC + 9 h): E-late-unknown has no later event.
    _setup(tmp_path, rows, {"C1": None, "C2": "U2", "C3": "U3", "C4": "U4"},
           newest_event_local=datetime(2026, 11, 23, 9, 30), events_for=["E-ok", "E-evented-unknown"])
    email = Counter({"E-ok": 1, "E-twice": 2, "E-skipped": 1, "E-evented-unknown": 1, "E-unplanned": 1})
    line = Counter({"U2": 3, "U4": 1})  # U2: two messages, three copies; U3: one sent, none arrived
    listed = Counter({"D-ok": 1, "D-twice": 2})

    result = _audit(tmp_path, email, line, listed)

    assert result["duplicates"] == 3  # E-twice, one more for U2, D-twice
    assert result["lost"] == 3  # E-never (sent, never delivered), E-stuck (still planned), U3's message
    assert result["wrong"] == 2  # E-skipped delivered; E-unplanned delivered but not in the ledger
    assert result["unknown_after"] == 4 and result["unknown_after_by_channel"] == {"email": 3, "line": 1}
    assert result["unknown_after_why"] == {"resend limit": 1, "no later event": 1, "other": 1, "key expired": 1}
    assert result["statuses"]["email"] == {"sent": 3, "skipped": 1, "planned": 1, "failed": 1, "unknown": 3}
    assert result["delivered"] == {"email": 6, "line": 4, "lists": 3}
    assert any("E-twice delivered 2 times" in e for e in result["examples"]["duplicates"])


def test_a_clean_sequence_has_nothing_to_report(tmp_path: Path) -> None:
    rows = [("E1", "email", "C1", "sent", 1, "accepted"), ("L1", "line", "C2", "sent", 1, "accepted"),
            ("E2", "email", "C1", "failed", 1, "refused (400)"), ("E3", "email", "C1", "held_out", 0, "holdout")]
    _setup(tmp_path, rows, {"C1": None, "C2": "U2"}, newest_event_local=datetime(2026, 11, 23, 12), events_for=["E1"])
    result = _audit(tmp_path, Counter({"E1": 1}), Counter({"U2": 1}), Counter())
    assert (result["duplicates"], result["lost"], result["wrong"], result["unknown_after"]) == (0, 0, 0, 0)
    assert result["unknown_after_why"] == {} and "examples" in result and not result["examples"]


def test_list_rows_are_counted_per_send_id_in_every_list_file(tmp_path: Path) -> None:
    (tmp_path / "2026-11-24").mkdir()
    for name, encoding, ids in (("dm-list-2026-11-24-a.csv", "cp932", ["D1", "D2"]),
                                ("dm-list-2026-11-24-b.csv", "cp932", ["D2"]),
                                ("insert-list-2026-11-24-c.csv", "utf-8-sig", ["I1"])):
        with (tmp_path / "2026-11-24" / name).open("w", encoding=encoding, newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["send_id", "name"])
            writer.writerows([[i, "山田 花子"] for i in ids])
    assert _listed(tmp_path) == Counter({"D1": 1, "D2": 2, "I1": 1})
