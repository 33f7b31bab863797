"""Unique single-use coupon codes: one per customer and step, issued when the send is planned.

A step whose offer says `unique: true` gives each customer a code of their own (its `code`,
if any, is the prefix: `WINBACK-7KQ4M9XHTC`). The rules (docs/coupons.md repeats them):

* **Unguessable**: `secrets.choice` over an alphabet without the characters people misread
  (0/O, 1/I/L), `coupon_code_length` characters (default 10: 31^10, about 8×10^14 codes).
* **Once per send**: `assign` runs right after planning, in one pass over the night's new
  `planned` rows of such steps that have no code yet. The send id is deterministic (the ledger
  key), and `ledger.coupons.send_id` is unique, so a retried or re-run send keeps its code.
* **Never shared**: `ledger.coupons.code` is the primary key. A generated code that exists
  already is drawn again before the insert; should one slip through, the constraint stops
  the statement and nothing of the night's codes is recorded (and the run says so).
* **Expiry**: `issued_on` (the send's run date) + the offer's `expires_in_days` (none: no expiry).
* **In the shop before the message**: `provision` writes, each night, the cart's coupon
  import file `<coupons_dir>/<send date>.csv` (every code of that date, UTF-8) and, when the
  source is Shopify, creates each code through the Admin GraphQL API
  (`discountCodeBasicCreate`, usage limit 1, for that customer only). A code Shopify did not
  create is `failed` with the reason; its message is not sent (`usable`), fails with that
  reason, and both are tried again on the next run.

The engine reads the code through the row it renders (`coupon_code`, `coupon_expires_on`).
"""

from __future__ import annotations

import csv
import io
import logging
import os
import secrets
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path
from typing import Any, Callable
from zoneinfo import ZoneInfo

import duckdb
import pandas as pd

from campaigns.schema import Offer, Scenario
from kizuna.config import Settings
from kizuna.errors import KizunaError

log = logging.getLogger("kizuna.campaigns")

#: No 0/O, 1/I/L: a code read aloud on the phone or copied from print is typed right.
ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"

#: The columns of the nightly import file, in order (docs/coupons.md explains each).
EXPORT_COLUMNS = ("code", "customer_id", "discount_type", "discount_value", "starts_on", "expires_on",
                  "usage_limit", "scenario_id", "step_id", "send_id")

#: States of a code in `ledger.coupons`.
ISSUED, CREATED, FAILED = "issued", "created", "failed"


def new_code(prefix: str | None, length: int = 10) -> str:
    """A fresh code: the step's prefix (upper case) and `length` random characters of ALPHABET."""
    body = "".join(secrets.choice(ALPHABET) for _ in range(length))
    return f"{prefix.upper()}-{body}" if prefix else body


def unique_offers(scenarios: list[Scenario]) -> dict[tuple[str, str], Offer]:
    """(scenario id, step id) -> offer, for the steps whose offer gives each customer a code of their own."""
    return {(s.id, st.id): st.offer for s in scenarios for st in s.steps if st.offer and st.offer.unique}


def _steps_sql(offers: dict[tuple[str, str], Offer]) -> str:
    # ids are validated [a-z0-9_]: safe as literals
    return ", ".join(f"('{scenario}', '{step}')" for scenario, step in offers)


def assign(con: duckdb.DuckDBPyConnection, scenarios: list[Scenario], length: int = 10) -> int:
    """Give every `planned` send of a unique-offer step that has no code yet its code; returns how many.

    Set-based: one SELECT finds the sends, Python draws the codes (`secrets`), one INSERT records them."""
    offers = unique_offers(scenarios)
    if not offers:
        return 0
    rows = con.execute(f"""
        select s.send_id, s.scenario_id, s.step_id, s.customer_id, s.run_date
        from ledger.sends s
        join (values {_steps_sql(offers)}) u(scenario_id, step_id)
          on u.scenario_id = s.scenario_id and u.step_id = s.step_id
        where s.status = 'planned'
          and not exists (select 1 from ledger.coupons c where c.send_id = s.send_id)
    """).fetchall()
    if not rows:
        return 0
    codes = [new_code(offers[(r[1], r[2])].code, length) for r in rows]
    codes = _redraw_taken(con, codes, [offers[(r[1], r[2])].code for r in rows], length)
    frame = pd.DataFrame({
        "code": codes,
        "send_id": [r[0] for r in rows], "scenario_id": [r[1] for r in rows], "step_id": [r[2] for r in rows],
        "customer_id": [r[3] for r in rows],
        "offer_type": [offers[(r[1], r[2])].type for r in rows],
        "offer_value": [offers[(r[1], r[2])].value for r in rows],
        "issued_on": [r[4] for r in rows],
        "expires_on": [_expiry(r[4], offers[(r[1], r[2])]) for r in rows],
    })
    con.register("new_coupons", frame)
    try:
        con.execute("""
            insert into ledger.coupons (code, send_id, scenario_id, step_id, customer_id, offer_type, offer_value,
                                        issued_on, expires_on, state, created_at, updated_at)
            select code, send_id, scenario_id, step_id, customer_id, offer_type, offer_value,
                   cast(issued_on as date), cast(expires_on as date), 'issued', now()::timestamp, now()::timestamp
            from new_coupons
        """)
    except duckdb.ConstraintException as exc:
        raise KizunaError(f"coupon codes could not be recorded ({str(exc).splitlines()[0]}); no code of tonight "
                          "was issued and no message carrying one goes out. Run again: fresh codes are drawn.") from None
    finally:
        con.unregister("new_coupons")
    return len(rows)


def _expiry(issued: date, offer: Offer) -> date | None:
    return issued + timedelta(days=offer.expires_in_days) if offer.expires_in_days else None


def _redraw_taken(con: duckdb.DuckDBPyConnection, codes: list[str], prefixes: list[str | None],
                  length: int) -> list[str]:
    """Draw again any code already in the ledger or twice in the batch (vanishingly rare, never assumed away)."""
    for _ in range(100):
        seen: set[str] = set()
        repeated = set()
        for c in codes:
            (repeated if c in seen else seen).add(c)
        taken = {r[0] for r in con.execute("select code from ledger.coupons where code in (select unnest(?))",
                                           [list(seen)]).fetchall()} | repeated
        if not taken:
            return codes
        first: set[str] = set()
        redrawn = []
        for c, p in zip(codes, prefixes):
            if c in taken and (c in first or c not in repeated):
                c = new_code(p, length)
            else:
                first.add(c)
            redrawn.append(c)
        codes = redrawn
    raise KizunaError("could not draw unused coupon codes in 100 attempts: make KIZUNA_COUPON_CODE_LENGTH larger")


# -- into the shop ------------------------------------------------------------------------------


@dataclass
class ProvisionResult:
    exported: dict[str, int] = field(default_factory=dict)  # file name -> codes in it
    created: int = 0  # codes created in Shopify tonight
    failed: Counter = field(default_factory=Counter)  # reason -> codes Shopify did not create

    def summary(self) -> str:
        parts = [f"{n} code(s) in {name}" for name, n in sorted(self.exported.items())]
        if self.created:
            parts.append(f"{self.created} created in Shopify")
        for reason, n in self.failed.items():
            parts.append(f"{n} not created in Shopify ({reason})")
        return "coupons: " + ("; ".join(parts) if parts else "none issued")


def export_file(con: duckdb.DuckDBPyConnection, folder: Path, send_date: date) -> tuple[Path, int] | None:
    """Write `<folder>/<send date>.csv` with every code issued for that date (rewritten whole, atomically:
    a re-run gives the same file); None when the date has no code."""
    rows = con.execute("""
        select code, customer_id, offer_type, offer_value, issued_on, expires_on, scenario_id, step_id, send_id
        from ledger.coupons where issued_on = ? order by code
    """, [send_date]).fetchall()
    if not rows:
        return None
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(EXPORT_COLUMNS)
    for code, customer, kind, value, issued, expires, scenario, step, send_id in rows:
        amount = "" if value is None else (str(int(value)) if float(value).is_integer() else str(value))
        writer.writerow([code, customer, kind, amount, issued.isoformat(), expires.isoformat() if expires else "",
                         1, scenario, step, send_id])
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{send_date.isoformat()}.csv"
    partial = target.with_suffix(".csv.part")
    with partial.open("wb") as f:
        f.write(buf.getvalue().encode("utf-8"))
        f.flush()
        os.fsync(f.fileno())
    os.replace(partial, target)
    return target, len(rows)


CREATE_MUTATION = """
mutation kizunaCoupon($basicCodeDiscount: DiscountCodeBasicInput!) {
  discountCodeBasicCreate(basicCodeDiscount: $basicCodeDiscount) {
    codeDiscountNode { id }
    userErrors { field message code }
  }
}
"""


def shopify_input(row: dict[str, Any], zone: ZoneInfo) -> dict[str, Any]:
    """DiscountCodeBasicInput of one code: usable once, by its customer only, until the end of its expiry day."""
    starts = datetime.combine(row["issued_on"], time(0), tzinfo=zone).astimezone(timezone.utc)
    value = ({"percentage": round(float(row["offer_value"]) / 100, 4)} if row["offer_type"] == "percent_off" else
             {"discountAmount": {"amount": str(int(row["offer_value"])), "appliesOnEachItem": False}})
    data: dict[str, Any] = {
        "title": f"kizuna {row['scenario_id']}/{row['step_id']} {row['code']}",
        "code": row["code"],
        "startsAt": starts.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "usageLimit": 1,
        "appliesOncePerCustomer": True,
        "context": {"customers": {"add": [f"gid://shopify/Customer/{row['customer_id']}"]}},
        "customerGets": {"value": value, "items": {"all": True}},
    }
    if row["expires_on"]:
        ends = datetime.combine(row["expires_on"] + timedelta(days=1), time(0), tzinfo=zone).astimezone(timezone.utc)
        data["endsAt"] = ends.strftime("%Y-%m-%dT%H:%M:%SZ")
    return data


def _shopify_client(settings: Settings):
    from connectors.sources.shopify import endpoint_for
    from connectors.sources.shopify.client import ShopifyClient
    from kizuna.secrets import get_secret

    return ShopifyClient(endpoint_for(settings.shopify_shop, settings.shopify_api_url),
                         get_secret("SHOPIFY_ACCESS_TOKEN"), max_attempts=3)


def create_in_shopify(con: duckdb.DuckDBPyConnection, settings: Settings, client_factory: Callable[[Settings], Any]
                      = _shopify_client) -> tuple[int, Counter]:
    """Create in Shopify every code not created yet whose send may still go out; record each outcome."""
    rows = con.execute(f"""
        select c.code, c.customer_id, c.offer_type, c.offer_value, c.issued_on, c.expires_on, c.scenario_id,
               c.step_id
        from ledger.coupons c join ledger.sends s using (send_id)
        where c.state <> '{CREATED}' and s.status in ('planned', 'failed')
        order by c.code
    """).fetchall()
    if not rows:
        return 0, Counter()
    names = [d[0] for d in con.description]
    failed: Counter = Counter()
    outcomes: list[tuple[str, str, str | None, str | None]] = []  # code, state, detail, provider id
    try:
        client = client_factory(settings)
    except KizunaError as exc:  # no shop or no token: every code waits, with the reason
        why = f"Shopify not reachable: {exc}"
        outcomes = [(r[0], FAILED, why, None) for r in rows]
        failed[why] += len(rows)
    else:
        zone = ZoneInfo(settings.timezone)
        try:
            for values in rows:
                row = dict(zip(names, values))
                state, detail, provider_id = _create_one(client, shopify_input(row, zone))
                outcomes.append((row["code"], state, detail, provider_id))
                if state == FAILED:
                    failed[detail or "?"] += 1
        finally:
            client.close()
    con.executemany(
        "update ledger.coupons set state = ?, detail = ?, provider_id = coalesce(?, provider_id), "
        "updated_at = now()::timestamp where code = ?",
        [(state, detail, pid, code) for code, state, detail, pid in outcomes])
    return sum(1 for o in outcomes if o[1] == CREATED), failed


def _create_one(client: Any, data: dict[str, Any]) -> tuple[str, str | None, str | None]:
    """(state, detail, provider id) of one discountCodeBasicCreate."""
    from kizuna.errors import ExportError

    try:
        result = client.execute(CREATE_MUTATION, {"basicCodeDiscount": data})
    except (ExportError, KizunaError) as exc:
        return FAILED, f"Shopify: {str(exc)[:300]}", None
    payload = (result.data or {}).get("discountCodeBasicCreate") or {}
    errors = payload.get("userErrors") or []
    # TAKEN: the code exists in the shop. Codes are random and kizuna's own, so it is this code, created by an
    # earlier attempt whose answer was lost (the client repeats a request after a 5xx or a dropped connection).
    if errors and all(e.get("code") == "TAKEN" for e in errors):
        return CREATED, "already in the shop (an earlier attempt created it)", None
    if errors:
        return FAILED, "Shopify: " + "; ".join(str(e.get("message")) for e in errors)[:300], None
    node = payload.get("codeDiscountNode") or {}
    if not node.get("id"):
        return FAILED, "Shopify answered without the created discount", None
    return CREATED, None, node["id"]


def provision(con: duckdb.DuckDBPyConnection, settings: Settings, client_factory: Callable[[Settings], Any]
              = _shopify_client) -> ProvisionResult:
    """Put tonight's codes where the shop can honour them: the import file of each send date with codes
    not yet exported or changed, and Shopify when it is the source. Call after `assign`, before delivery."""
    result = ProvisionResult()
    dates = [r[0] for r in con.execute(
        "select distinct c.issued_on from ledger.coupons c join ledger.sends s using (send_id) "
        "where s.status in ('planned', 'failed') order by 1").fetchall()]
    for day in dates:
        written = export_file(con, settings.coupons_dir, day)  # type: ignore[arg-type]
        if written:
            result.exported[written[0].name] = written[1]
    if settings.source == "shopify":
        result.created, result.failed = create_in_shopify(con, settings, client_factory)
    if dates or result.created or result.failed:
        log.info("%s", result.summary())
    return result


def usable(settings: Settings, state: str | None) -> bool:
    """May a message carrying this code go out? With Shopify as the source, only once Shopify has it."""
    if state is None:
        return False
    return state == CREATED if settings.source == "shopify" else True


def refusal(settings: Settings, code: str | None, state: str | None, detail: str | None) -> str:
    """Why a message was held back for its code (Japanese first, for the person reading `kizuna sends failed`)."""
    if code is None:
        return "クーポンコードが発行されていません (no coupon code was issued for this send); it is tried again"
    return (f"クーポンコード {code} をショップに作成できませんでした (coupon code not created in Shopify: "
            f"{detail or state}); the message was not sent and is tried again on the next run")
