"""The Shopify source against the loopback Shopify twin (real HTTP on 127.0.0.1).

The twin serves a generated shop (kizuna's own exports) in Shopify's shapes; the source reads
it back through the Admin GraphQL API. The reference is the same shop through kizuna's CSV
source, restricted to what Shopify can carry (docs/sources/shopify.md): the marts and the raw
tables must come out identical, row by row, night by night, with the twin throttling and
failing a bulk operation on the way.
"""

from __future__ import annotations

import csv
import json
import logging
import re
from datetime import date, datetime, timedelta
from pathlib import Path

import duckdb
import pytest
from pydantic import SecretStr

from connectors.channels.loopback.shopify import DEFAULT_TOKEN, ShopifyLoopback
from connectors.sources import loader
from connectors.sources.shopify import API_VERSION, ShopifySource, endpoint_for, mapping, source_from_settings
from connectors.sources.shopify.client import ShopifyClient
from connectors.sources.shopify.transform import CARRIED
from kizuna import stages
from kizuna.config import PROJECT_ROOT, Settings
from kizuna.demo_shop import generate_shop
from kizuna.errors import ExportError, KizunaError, NightRejected, QualityGateFailed
from source_parity import assert_same_marts, build, restrict, row_differences

END = date(2026, 11, 22)
ID_COLUMNS = {"customer_id", "order_id", "product_id", "order_line_id", "shipment_id", "cart_id"}
#: Columns whose `updated_at` Shopify moves with related objects: a customer's with their consent, an
#: order's (and so its lines') with its fulfilments. Compared apart (`expected_updated_at`).
MOVED = {"customers", "orders", "order_lines"}


# -- the reference: kizuna's CSV restricted to what Shopify carries ------------------------------


def _number(value: str) -> str:
    return str(int(re.sub(r"\D", "", value)))


def shopify_reference(exports: Path, dest: Path) -> Path:
    """The shop's exports as Shopify can deliver them (docs/sources/shopify.md, "What Shopify cannot carry")."""
    media = {}
    with (exports / sorted(p.name for p in exports.iterdir() if p.is_dir())[0] / "media.csv").open() as fh:
        media = {r["media_code"]: r["media_type"] for r in csv.DictReader(fh)}

    def translate(table: str, column: str, value: str) -> str:
        if column in ID_COLUMNS:
            return _number(value)  # gid://shopify/Customer/123 -> 123
        if table == "customers" and column == "phone":
            return re.sub(r"\D", "", value)  # E.164 back to the domestic form, without separators
        if table == "orders" and column == "media_code":
            return "" if media.get(value) == "organic" else value  # no UTM parameters, no medium
        if table == "carts" and column == "status":
            return "abandoned" if value == "open" else value  # Shopify cannot tell a cart in progress
        return value

    restrict(exports, dest, keep={t: c for t, c in CARRIED.items()}, translate=translate)
    _consents_as_shopify_keeps_them(dest)
    return dest


def _consents_as_shopify_keeps_them(folder: Path) -> None:
    """E-mail and SMS consent only, only with an address or number to hold it, and a withdrawal only
    when kizuna saw the opt-in on an earlier night (Shopify keeps only the time of the last change)."""
    contact: dict[str, dict[str, str]] = {}
    granted_before: set[tuple[str, str]] = set()
    for night in sorted(p for p in folder.iterdir() if p.is_dir()):
        customers = night / "customers.csv"
        if customers.exists():
            with customers.open(encoding="utf-8") as fh:
                for r in csv.DictReader(fh):
                    contact[r["customer_id"]] = {"email": r["email"], "sms": r["phone"]}
        path = night / "consents.csv"
        if not path.exists():
            continue
        with path.open(encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            header, rows = reader.fieldnames, list(reader)
        kept, granted_tonight = [], set()
        for r in rows:
            key = (r["customer_id"], r["channel"])
            if r["channel"] not in ("email", "sms") or not contact.get(r["customer_id"], {}).get(r["channel"]):
                continue
            if r["status"] == "withdrawn" and key not in granted_before:
                continue
            kept.append(r)
            if r["status"] == "granted":
                granted_tonight.add(key)
        granted_before |= granted_tonight
        with path.open("w", encoding="utf-8", newline="") as fh:
            writer = csv.DictWriter(fh, header, lineterminator="\n")
            writer.writeheader()
            writer.writerows(kept)


def raw_rows(warehouse: Path, table: str, drop: set[str] = frozenset()) -> list[tuple]:
    columns = [c for c in CARRIED[table] if c not in drop]
    with duckdb.connect(str(warehouse), read_only=True) as con:
        return sorted(con.execute(f"select {', '.join(columns)} from raw.{table}").fetchall(), key=repr)


def assert_same_raw(reference: Path, candidate: Path) -> None:
    """Every carried table holds the same rows (keys unique by the tables' own keys: duplicate-free)."""
    problems = []
    for table in CARRIED:
        drop = {"updated_at"} if table in MOVED else set()
        ref, cand = raw_rows(reference, table, drop), raw_rows(candidate, table, drop)
        if ref != cand:
            problems.append(f"{table}: {row_differences(ref, cand)}")
    assert not problems, "raw tables differ:\n" + "\n".join(problems)


# -- fixtures ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def shop(tmp_path_factory) -> Path:
    exports = tmp_path_factory.mktemp("shop") / "exports"
    generate_shop(exports, 700, 11, END, 3)
    return exports


def _settings(root: Path, **kw) -> Settings:
    return Settings(home=root, data_dir=root / "data", dbt_project_dir=PROJECT_ROOT / "dbt_project", **kw)


def _shopify_settings(root: Path, twin: ShopifyLoopback) -> Settings:
    return _settings(root, source="shopify", shopify_shop=twin.shop, shopify_api_url=twin.url)


@pytest.fixture
def token(monkeypatch) -> str:
    monkeypatch.setenv("KIZUNA_SHOPIFY_ACCESS_TOKEN", DEFAULT_TOKEN)
    return DEFAULT_TOKEN


def _sync_points(settings: Settings) -> list[tuple[date, str]]:
    with duckdb.connect(str(settings.warehouse), read_only=True) as con:
        return con.execute("select night, mode from raw._shopify_sync order by window_end_utc").fetchall()


# -- the acceptance test -------------------------------------------------------------------------


def test_same_shop_through_throttling_shopify_and_through_csv_gives_identical_marts_and_raw_tables(
        shop, tmp_path, token):
    reference = _settings(tmp_path / "ref", exports_dir=shopify_reference(shop, tmp_path / "ref-exports"))
    build(reference)

    with ShopifyLoopback.from_exports(shop, restore_rate=2000, throttle_share=0.3, seed=5) as twin:
        twin.fail_next_bulk("INTERNAL_SERVER_ERROR")
        candidate = _shopify_settings(tmp_path / "shopify", twin)
        nights = []
        while True:  # one nightly run per night, as the shop lives through them
            night = stages.resolve_night(candidate, None)
            assert night == twin.night
            loads = stages.ingest(candidate, night)
            nights.append((night, [f.file_name for r in loads for f in r.loaded]))
            if not twin.has_next_night:
                break
            twin.next_night()
        build(candidate)
        assert twin.throttled > 0, "the twin throttled nothing: the test proves nothing about throttling"
        failed = [op for op in twin.bulk_ops.values() if op.status == "FAILED"]
        assert len(failed) == 1 and len(twin.bulk_ops) == 5  # 4 resources, one run twice
        assert twin.token_leaks == 0

    assert [n for n, _ in nights] == [END - timedelta(days=3 - i) for i in range(4)]
    assert _sync_points(candidate) == [(n, "bulk" if i == 0 else "incremental") for i, (n, _) in enumerate(nights)]
    assert_same_raw(reference.warehouse, candidate.warehouse)
    assert_same_marts(reference, candidate)


# -- nights that fail leave the sync point where it was -------------------------------------------


@pytest.fixture(scope="module")
def small_shop(tmp_path_factory) -> Path:
    exports = tmp_path_factory.mktemp("small") / "exports"
    generate_shop(exports, 250, 3, END, 2)
    return exports


def _raw(settings_or_path, sql: str, params: list | None = None) -> list[tuple]:
    path = settings_or_path.warehouse if isinstance(settings_or_path, Settings) else settings_or_path
    with duckdb.connect(str(path), read_only=True) as con:
        return con.execute(sql, params or []).fetchall()


def _orders_in_window(twin: ShopifyLoopback, start: datetime, end: datetime) -> set[str]:
    return {str(o["_id"]) for o in twin.view.lists["orders"] if start < o["_updated"] <= end}


def test_a_night_the_gate_refuses_leaves_the_sync_point_and_the_next_run_reads_it_again(small_shop, tmp_path, token):
    with ShopifyLoopback.from_exports(small_shop, restore_rate=5000) as twin:
        settings = _shopify_settings(tmp_path, twin)
        first = twin.night
        stages.ingest(settings, first)
        twin.next_night()
        night = twin.night
        # During the night the shop saves an order whose total does not add up: the raw gate refuses the night.
        victim = sorted(twin.rows["orders"])[0]
        before = dict(twin.rows["orders"][victim])
        twin.edit("orders", victim, f"{night} 10:00:00", total=str(int(before["total"]) + 1))
        with pytest.raises(QualityGateFailed, match="orders.total_adds_up"):
            stages.ingest(settings, night)
        assert _sync_points(settings) == [(first, "bulk")]
        assert _raw(settings, "select count(*) from raw.orders where _night = ?", [night]) == [(0,)]
        assert _raw(settings, "select total from raw.orders where order_id = ?", [_number(victim[0])]) == \
            [(int(before["total"]),)]

        # The next morning (after the night's end) the merchant corrects it; the rerun reads the same window
        # again: everything else of the night arrives, the correction comes with the next night.
        twin.edit("orders", victim, f"{night + timedelta(days=1)} 00:30:00", total=before["total"])
        window = (twin.view.at(f"{night} 00:00:00"), twin.view.at(f"{night + timedelta(days=1)} 00:00:00"))
        expected = _orders_in_window(twin, *window)
        assert expected and _number(victim[0]) not in expected
        stages.ingest(settings, night)
        assert _sync_points(settings) == [(first, "bulk"), (night, "incremental")]
        loaded = {r[0] for r in _raw(settings, "select order_id from raw.orders where _night = ?", [night])}
        assert loaded == expected

        twin.next_night()
        stages.ingest(settings, twin.night)
        assert _raw(settings, "select total, _night from raw.orders where order_id = ?", [_number(victim[0])]) == \
            [(int(before["total"]), twin.night)]


def _direct_source(twin: ShopifyLoopback, root: Path, **kw) -> ShopifySource:
    client = ShopifyClient(endpoint_for("", twin.url), SecretStr(twin.token), retry_base=0.01, max_attempts=3)
    return ShopifySource(endpoint=client.endpoint, token=SecretStr(twin.token), shop=twin.shop,
                         landing_dir=root / "landing", archive_dir=root / "archive", client=client, poll_first=0.01,
                         **kw)


def _load(con, twin: ShopifyLoopback, root: Path, **kw) -> tuple[ShopifySource, list]:
    source = _direct_source(twin, root, **kw)
    night = source.nights()[-1]
    return source, loader.load_pending(con, source, through=night, archive_dir=root / "archive")


def test_an_api_failure_in_the_middle_of_the_pages_leaves_the_sync_point_and_the_rerun_completes(small_shop, tmp_path):
    with ShopifyLoopback.from_exports(small_shop, restore_rate=5000) as twin, \
            duckdb.connect(str(tmp_path / "w.duckdb")) as con:
        _load(con, twin, tmp_path)
        twin.next_night()
        window = (twin.view.at(f"{twin.night} 00:00:00"), twin.view.at(f"{twin.night + timedelta(days=1)} 00:00:00"))
        expected = _orders_in_window(twin, *window)
        assert len(expected) >= 3  # several pages of 1
        twin.fail_requests(count=5, status=502, after=3)  # the shop, the customers, the first page of orders fine
        with pytest.raises(NightRejected, match="failed 3 times in a row") as refused:
            _load(con, twin, tmp_path, page_sizes={"orders": 1})
        assert "sync point did not move" in str(refused.value)
        assert con.execute("select night from raw._shopify_sync").fetchall() == [(twin.night - timedelta(days=1),)]
        assert con.execute("select count(*) from raw.orders where _night = ?", [twin.night]).fetchone() == (0,)

        assert twin.queries.count("OrdersPage") == 1  # one page of orders served, the next ones failed
        twin.faults.clear()
        source, results = _load(con, twin, tmp_path, page_sizes={"orders": 1})
        assert [r.night for r in results] == [twin.night]
        assert {r[0] for r in con.execute("select order_id from raw.orders where _night = ?",
                                          [twin.night]).fetchall()} == expected
        assert source.sync_point.night == twin.night


def test_a_night_without_any_change_keeps_the_sync_point_for_the_next_window(small_shop, tmp_path):
    with ShopifyLoopback.from_exports(small_shop, restore_rate=5000) as twin, \
            duckdb.connect(str(tmp_path / "w.duckdb")) as con:
        _load(con, twin, tmp_path)
        first = twin.night
        twin.advance(86_400)  # a day passes in which nothing changes in the shop
        source, results = _load(con, twin, tmp_path)
        assert source.nights()[-1] == first + timedelta(days=1) and results == []
        assert con.execute("select night from raw._shopify_sync").fetchall() == [(first,)]
        twin.advance(-86_400)
        twin.next_night()  # the changes of the next night: read from the same sync point, none is lost
        source, results = _load(con, twin, tmp_path)
        assert [r.night for r in results] == [twin.night]
        window = (twin.view.at(f"{first + timedelta(days=1)} 00:00:00"),
                  twin.view.at(f"{twin.night + timedelta(days=1)} 00:00:00"))
        assert {r[0] for r in con.execute("select order_id from raw.orders where _night = ?", [twin.night]).fetchall()
                } == _orders_in_window(twin, *window)


# -- changes arriving later ----------------------------------------------------------------------


def test_a_cancellation_and_a_refund_arrive_later_as_new_versions_of_the_order(small_shop, tmp_path):
    with ShopifyLoopback.from_exports(small_shop, restore_rate=5000) as twin, \
            duckdb.connect(str(tmp_path / "w.duckdb")) as con:
        _load(con, twin, tmp_path)
        confirmed = [k for k, r in sorted(twin.rows["orders"].items()) if r["status"] == "confirmed"]
        cancelled, refunded = confirmed[0], confirmed[1]
        twin.next_night()
        twin.edit("orders", cancelled, f"{twin.night} 09:00:00", status="cancelled")
        twin.edit("orders", refunded, f"{twin.night} 15:30:00", status="returned")
        before = dict(con.execute("select order_id, status from raw.orders").fetchall())
        assert before[_number(cancelled[0])] == before[_number(refunded[0])] == "confirmed"
        _load(con, twin, tmp_path)
        rows = dict(((r[0]), r[1:]) for r in con.execute(
            "select order_id, status, updated_at, _night from raw.orders where order_id in (?, ?)",
            [_number(cancelled[0]), _number(refunded[0])]).fetchall())
        assert rows[_number(cancelled[0])] == ("cancelled", datetime(twin.night.year, twin.night.month,
                                                                     twin.night.day, 9), twin.night)
        assert rows[_number(refunded[0])][0] == "returned" and rows[_number(refunded[0])][2] == twin.night
        # the lines came again with the order's new version, once each
        assert con.execute("select count(*), count(distinct order_line_id) from raw.order_lines").fetchone() == \
            (sum(1 for _ in twin.rows["order_lines"]),) * 2


def test_a_withdrawn_consent_keeps_the_time_kizuna_saw_the_opt_in(small_shop, tmp_path):
    with ShopifyLoopback.from_exports(small_shop, restore_rate=5000) as twin, \
            duckdb.connect(str(tmp_path / "w.duckdb")) as con:
        _load(con, twin, tmp_path)
        key, row = next((k, r) for k, r in sorted(twin.rows["consents"].items())
                        if r["channel"] == "email" and r["status"] == "granted")
        twin.next_night()
        at = f"{twin.night} 20:15:00"
        twin.edit("consents", key, at, status="withdrawn", withdrawn_at=at)
        _load(con, twin, tmp_path)
        assert con.execute("select status, consented_at, withdrawn_at, updated_at from raw.consents "
                           "where customer_id = ? and channel = 'email'", [_number(key[0])]).fetchall() == \
            [("withdrawn", datetime.fromisoformat(row["consented_at"]), datetime.fromisoformat(at),
              datetime.fromisoformat(at))]
        # the customer's Shopify record changed with it, so it came again (not a new customer)
        assert con.execute("select count(*), max(_night) from raw.customers where customer_id = ?",
                           [_number(key[0])]).fetchone() == (1, twin.night)


# -- the cost budget ---------------------------------------------------------------------------------


def test_the_client_waits_for_the_cost_budget_before_a_query_it_cannot_afford(small_shop):
    # Pages of 10 orders ask for ~950 points; what comes back costs far less and is refunded, but the
    # bucket (1,000 points, 400 restored per second) cannot pay the next page at once: the client waits.
    from connectors.sources.shopify.queries import RESOURCES, window_search

    orders = next(r for r in RESOURCES if r.name == "orders")
    with ShopifyLoopback.from_exports(small_shop, bucket_size=1000, restore_rate=400) as twin:
        client = ShopifyClient(endpoint_for("", twin.url), SecretStr(twin.token))
        search = window_search(None, "2030-01-01T00:00:00Z")
        after, pages = None, 0
        while pages < 4:
            result = client.execute(orders.page_query(), {"first": 10, "after": after, "query": search})
            pages += 1
            after = result.data["orders"]["pageInfo"]["endCursor"]
            cost = result.extensions["cost"]
            assert cost["requestedQueryCost"] > 900 and cost["actualQueryCost"] < 600
        assert client.stats.waited_seconds > 0.3, client.stats
        assert twin.throttled == 0 and client.stats.throttled == 0, "the client should have waited, not be throttled"


# -- secrets ---------------------------------------------------------------------------------------


def test_the_access_token_is_never_logged_shown_or_sent_anywhere_but_the_api(small_shop, tmp_path, monkeypatch,
                                                                           caplog):
    secret = "shpat_0123456789abcdef-never-print-me"
    caplog.set_level(logging.DEBUG)  # every logger, httpx and httpcore included
    with ShopifyLoopback.from_exports(small_shop, token=secret, restore_rate=5000) as twin, \
            duckdb.connect(str(tmp_path / "w.duckdb")) as con:
        monkeypatch.setenv("KIZUNA_SHOPIFY_ACCESS_TOKEN", secret)
        source = source_from_settings(_shopify_settings(tmp_path, twin))
        shown = [repr(source), str(source), repr(source.client), repr(vars(source)), repr(vars(source.client))]
        loader.load_pending(con, source, through=source.nights()[-1], archive_dir=tmp_path / "archive")
        twin.next_night()
        source = source_from_settings(_shopify_settings(tmp_path, twin))
        loader.load_pending(con, source, through=source.nights()[-1], archive_dir=tmp_path / "archive")
        assert twin.bulk_ops and twin.token_leaks == 0  # the bulk results were fetched without the token

        monkeypatch.setenv("KIZUNA_SHOPIFY_ACCESS_TOKEN", secret[:-3] + "bad")
        with pytest.raises(ExportError) as refused:
            source_from_settings(_shopify_settings(tmp_path, twin)).nights()
        shown.append(str(refused.value))
    assert "refused the access token (HTTP 401)" in str(refused.value)
    assert "KIZUNA_SHOPIFY_ACCESS_TOKEN" in str(refused.value)
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "HTTP Request: POST" in logged  # the client's own requests were logged, at all levels
    for text in shown + [logged] + [p.read_text(errors="replace") for p in tmp_path.rglob("*.csv")]:
        assert secret not in text and secret[:-3] not in text


def test_plain_http_to_another_host_is_refused_before_the_token_travels():
    with pytest.raises(KizunaError, match="plain http"):
        endpoint_for("shop.myshopify.com", "http://shop.example.com")
    with pytest.raises(KizunaError, match="domain only"):
        endpoint_for("https://shop.myshopify.com", None)
    assert endpoint_for("shop.myshopify.com", None) == \
        f"https://shop.myshopify.com/admin/api/{API_VERSION}/graphql.json"


# -- the mapping rules -------------------------------------------------------------------------------


def test_media_code_rule():
    visit = lambda **v: {"firstVisit": v}  # noqa: E731
    assert mapping.media_code(visit(utmParameters={"source": "google", "campaign": "brand"})) == "google_brand"
    assert mapping.media_code(visit(utmParameters={"source": "AF", "campaign": "A8"})) == "AF_A8"
    assert mapping.media_code(visit(utmParameters={"source": " line ", "campaign": ""})) == "line"
    assert mapping.media_code(visit(utmParameters={"campaign": "spring"})) == "spring"
    assert mapping.media_code(visit(utmParameters=None,
                                    landingPage="https://s.jp/lp?utm_source=insta%20gram&utm_campaign=c1")) == \
        "insta gram_c1"
    assert mapping.media_code(visit(utmParameters=None, landingPage="https://s.jp/")) is None
    assert mapping.media_code(None) is None and mapping.media_code({"firstVisit": None}) is None


def test_values_are_converted_without_inventing_anything():
    clock = mapping.Clock("Asia/Tokyo")
    assert clock.local("2026-11-20T15:30:00Z") == "2026-11-21 00:30:00"
    assert mapping.legacy_id("gid://shopify/Order/450789469") == "450789469"
    assert mapping.legacy_id("gid://shopify/AbandonedCheckoutLineItem/7?checkout=1") == "7"
    assert mapping.yen({"shopMoney": {"amount": "4980.0"}}) == "4980"
    assert mapping.yen({"shopMoney": {"amount": "49.95"}}) == "49.95"  # passed on: the loader quarantines it
    assert mapping.phone("+819012345678") == "09012345678"
    assert mapping.phone("+14155550100") == "+14155550100"
    assert mapping.prefecture({"provinceCode": "JP-13", "province": "Tokyo"}) == "東京都"
    assert mapping.prefecture({"provinceCode": "CA-ON", "province": "Ontario"}) == "Ontario"
    assert mapping.order_status({"cancelledAt": "2026-11-20T01:00:00Z", "displayFinancialStatus": "REFUNDED"}) == \
        "cancelled"
    assert mapping.order_status({"displayFinancialStatus": "REFUNDED"}) == "returned"
    assert mapping.order_status({"displayFinancialStatus": "PARTIALLY_REFUNDED"}) == "confirmed"
    assert mapping.product_type(" Trial ") == "trial" and mapping.product_type("Supplements") == "main"
    from kizuna.demo_shop import names

    assert {c.prefecture for c in names.CITIES} <= {kanji for kanji, _ in mapping.JP_PREFECTURES.values()}


# -- the twin speaks like Shopify ---------------------------------------------------------------------


def _post(twin: ShopifyLoopback, query: str, variables: dict | None = None, token: str | None = None):
    import httpx

    return httpx.post(f"{twin.url}/admin/api/{API_VERSION}/graphql.json", json={"query": query, "variables":
                      variables or {}}, headers={"X-Shopify-Access-Token": token or twin.token})


def test_the_twin_refuses_what_shopify_refuses(small_shop):
    with ShopifyLoopback.from_exports(small_shop) as twin:
        unknown = _post(twin, "{ orders(first: 1) { edges { node { id legacyName } } } }").json()
        assert unknown["errors"][0]["message"] == "Field 'legacyName' doesn't exist on type 'Order'"
        assert unknown["errors"][0]["extensions"]["code"] == "undefinedField" and "data" not in unknown
        assert "first or last" in _post(twin, "{ customers { edges { node { id } } } }").json()["errors"][0]["message"]
        assert "selections" in _post(twin, "{ shop }").json()["errors"][0]["message"]
        assert "argument 'since'" in _post(twin, "{ orders(first: 1, since: 3) { nodes { id } } }").json()[
            "errors"][0]["message"]
        costly = _post(twin, "{ orders(first: 250) { nodes { id lineItems(first: 250) { nodes { id } } } } }").json()
        assert costly["errors"][0]["extensions"]["code"] == "MAX_COST_EXCEEDED"
        searched = _post(twin, '{ orders(first: 1, query: "updated_since:>2020") { nodes { id } } }').json()
        assert searched["extensions"]["search"][0]["warnings"][0]["field"] == "updated_since"
        assert _post(twin, "{ shop { name } }", token="shpat_wrong").status_code == 401
        bad_bulk = _post(twin, 'mutation($q: String!) { bulkOperationRunQuery(query: $q) { bulkOperation { id } '
                               'userErrors { field message } } }',
                         {"q": "{ orders { edges { node { lineItems { edges { node { id } } } } } } }"}).json()
        assert "must select 'id'" in bad_bulk["data"]["bulkOperationRunQuery"]["userErrors"][0]["message"]


def test_the_source_stops_when_shopify_ignores_its_search_filter(small_shop, tmp_path):
    # A client that lost its filter would read the whole shop as one night's changes: never silently.
    from connectors.sources.shopify.queries import RESOURCES

    with ShopifyLoopback.from_exports(small_shop) as twin:
        client = ShopifyClient(endpoint_for("", twin.url), SecretStr(twin.token))
        customers = next(r for r in RESOURCES if r.name == "customers")
        with pytest.raises(ExportError, match="could not read the source's search filter"):
            client.execute(customers.page_query(), {"first": 5, "query": "updated:>'2026-11-20T00:00:00Z'"})


def test_a_throttled_answer_is_waited_out_and_never_read_as_data(small_shop):
    with ShopifyLoopback.from_exports(small_shop, throttle_share=1.0, restore_rate=5000, seed=1) as twin:
        client = ShopifyClient(endpoint_for("", twin.url), SecretStr(twin.token), max_throttled=3)
        with pytest.raises(ExportError, match="kept answering THROTTLED"):
            client.execute("query Shop { shop { ianaTimezone currencyCode } }")
        assert client.stats.throttled == 4 and twin.throttled == 4
        twin.throttle_share = 0.5
        client = ShopifyClient(endpoint_for("", twin.url), SecretStr(twin.token))
        for _ in range(10):
            assert client.execute("query Shop { shop { currencyCode } }").data == {"shop": {"currencyCode": "JPY"}}
        assert client.stats.throttled > 0


def test_fulfilments_and_consents_shopify_sends_again_unchanged_do_not_make_a_night_look_resent(
        small_shop, tmp_path, token):
    # Shopify sends an order's fulfilments with every version of the order, and a customer's consent
    # states with every version of the customer. Two nights repeating the same rows would have files
    # identical byte for byte, which the raw gate refuses as an export sent twice (export.file_repeated).
    with ShopifyLoopback.from_exports(small_shop, restore_rate=5000, night_index=2) as twin:
        settings = _shopify_settings(tmp_path, twin)
        stages.ingest(settings, twin.night)  # the first load, at the shop's last night
        order = next(k for k, r in sorted(twin.rows["orders"].items()) if r["status"] == "confirmed" and any(
            s["order_id"] == k[0] for s in twin.rows["shipments"].values()))
        shipment = next(k for k, s in twin.rows["shipments"].items() if s["order_id"] == order[0])
        customer = next(k[0] for k, c in sorted(twin.rows["consents"].items())
                        if c["channel"] == "email" and c["status"] == "granted")
        quiet = twin.night
        for day, edits in ((1, [("shipments", shipment, {"delivered_at": "{d} 11:00:00"}),
                                ("customers", (customer,), {"city": "府中市"})]),
                           (2, [("orders", order, {"status": "returned"}),
                                ("customers", (customer,), {"address_line": "本町1丁目2-3"})])):
            night = quiet + timedelta(days=day)
            twin.advance(86_400)  # another day in the shop, with nothing but these changes
            for table, key, changes in edits:
                twin.edit(table, key, f"{night} 10:00:00", **{k: v.format(d=night) for k, v in changes.items()})
            stages.ingest(settings, night)  # raises QualityGateFailed (export.file_repeated) if a file repeats
        files = dict(((n, f), r) for n, f, r in _raw(settings, "select night, file_name, rows_read from "
                                                               "raw._load_log where status = 'loaded'"))
        assert files[(quiet + timedelta(days=1), "shipments.csv")] == 1
        assert (quiet + timedelta(days=1), "consents.csv") not in files  # the consent did not change
        assert (quiet + timedelta(days=2), "shipments.csv") not in files
        assert (quiet + timedelta(days=2), "consents.csv") not in files
        assert _sync_points(settings)[-1][0] == quiet + timedelta(days=2)
        assert _raw(settings, "select status from raw.orders where order_id = ?", [_number(order[0])]) == \
            [("returned",)]


def test_an_order_with_more_lines_than_a_page_and_a_page_too_costly_are_read_whole(small_shop, tmp_path):
    with ShopifyLoopback.from_exports(small_shop, restore_rate=20000) as twin, \
            duckdb.connect(str(tmp_path / "w.duckdb")) as con:
        _load(con, twin, tmp_path)
        twin.next_night()
        key, order = next((k, r) for k, r in sorted(twin.rows["orders"].items()) if r["status"] == "confirmed")
        product = next(iter(twin.rows["products"].values()))
        at = f"{twin.night} 13:00:00"
        for i in range(23):  # the merchant edits the order: 23 more lines (a page holds 10)
            line_id = f"L9{i:09d}"
            twin.rows["order_lines"][(line_id,)] = {
                "order_line_id": line_id, "order_id": key[0], "product_id": product["product_id"], "quantity": "1",
                "unit_price": product["list_price"], "line_amount": product["list_price"], "updated_at": at}
        twin.edit("orders", key, at)
        source, _ = _load(con, twin, tmp_path, page_sizes={"orders": 40})  # 40 orders a page: ~3,800 points
        lines = con.execute("select count(*) from raw.order_lines where order_id = ?", [_number(key[0])]).fetchone()
        assert lines == (sum(1 for r in twin.rows["order_lines"].values() if r["order_id"] == key[0]),)
        assert lines[0] > 23 and "MoreLineItems" in twin.queries
        costs = {json.loads(shape)[0][1]: c for (q, shape), c in source.client._costs.items()
                 if q.startswith("query OrdersPage")}
        assert costs[40] > 1000 and costs[20] > 1000 and costs[10] <= 1000  # halved until Shopify accepted it
