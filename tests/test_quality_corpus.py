"""A corpus of broken exports: every fault is caught by the right check, with its table, count and an example.

One small clean demo shop (a full-history night and two nightly folders) is generated
and its first two nights loaded once per module; each case copies that warehouse,
breaks tonight's export in one way, and runs the stages as the nightly flow does
(ingest -> raw gate -> dbt build -> mart gate -> sends). The mart cases share one
dbt build. A gate error must stop the run with the failed check named in the
message, and nothing may be sent.
"""

from __future__ import annotations

import csv
import io
import shutil
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Callable

import duckdb
import pytest
import yaml

from kizuna import modelling, stages
from kizuna.config import Settings
from kizuna.errors import ExportError, QualityGateFailed

END = date(2026, 11, 22)
YESTERDAY, TONIGHT = date(2026, 11, 21), END


# -- the clean shop, loaded through yesterday -------------------------------------------


# These tests read what each check says (names, counts, examples) in the English source wording; the Japanese
# wording of every check is tested in tests/test_locale.py.
pytestmark = pytest.mark.usefixtures("english_messages")


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    from kizuna.demo_shop import generate_shop

    root = tmp_path_factory.mktemp("clean")
    generate_shop(root / "exports", customers=1000, seed=4242, end_date=END, nights=2)
    stages.ingest(settings_for(root), YESTERDAY)
    return root


def settings_for(root: Path, overrides: dict | None = None) -> Settings:
    config = None
    if overrides:
        config = root / "quality-overrides.yaml"
        config.write_text(yaml.safe_dump(overrides), encoding="utf-8")
    return Settings(home=Path(__file__).resolve().parent.parent, data_dir=root, exports_dir=root / "exports",
                    quality_config=config)


def copy_shop(base: Path, dest: Path) -> Path:
    for name in ("exports", "archive"):
        shutil.copytree(base / name, dest / name)
    shutil.copy2(base / "warehouse.duckdb", dest / "warehouse.duckdb")
    return dest


# -- mutating tonight's CSV files ------------------------------------------------------------


def tonight(root: Path, table: str) -> Path:
    return root / "exports" / TONIGHT.isoformat() / f"{table}.csv"


def read_rows(path: Path) -> tuple[list[str], list[dict]]:
    with path.open(encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        return list(reader.fieldnames or []), list(reader)


def write_rows(path: Path, header: list[str], rows: list[dict]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, header, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    path.write_text(buf.getvalue(), encoding="utf-8")


def edit(table: str, fn: Callable[[list[dict]], list[dict] | None]) -> Callable[[Path], None]:
    """A mutation changing the rows of tonight's `table` file (fn edits in place or returns new rows)."""
    def mutate(root: Path) -> None:
        path = tonight(root, table)
        header, rows = read_rows(path)
        assert rows, f"tonight's {table}.csv has no row to break"
        new = fn(rows)
        write_rows(path, header, rows if new is None else new)
    return mutate


def first(**changes) -> Callable[[list[dict]], None]:
    def fn(rows: list[dict]) -> None:
        rows[0].update({k: (v(rows[0]) if callable(v) else v) for k, v in changes.items()})
    return fn


def rename_column(table: str, old: str, new: str) -> Callable[[Path], None]:
    def mutate(root: Path) -> None:
        path = tonight(root, table)
        lines = path.read_text(encoding="utf-8").split("\n", 1)
        names = [new if n == old else n for n in lines[0].split(",")]
        path.write_text(",".join(names) + "\n" + lines[1], encoding="utf-8")
    return mutate


def resend_yesterdays(table: str) -> Callable[[Path], None]:
    def mutate(root: Path) -> None:
        shutil.copyfile(root / "exports" / YESTERDAY.isoformat() / f"{table}.csv", tonight(root, table))
    return mutate


def empty_night(root: Path) -> None:
    for path in (root / "exports" / TONIGHT.isoformat()).glob("*.csv"):
        path.write_text(path.read_text(encoding="utf-8").split("\n", 1)[0] + "\n", encoding="utf-8")


def doubled(rows: list[dict]) -> list[dict]:
    return rows + [dict(r) for r in rows]


def many_more_orders(rows: list[dict]) -> list[dict]:
    extra = []
    for i in range(120):
        r = dict(rows[0])
        r["order_id"] = f"OX{i:08d}"
        extra.append(r)
    return rows + extra


# -- the corpus ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    id: str
    mutate: Callable[[Path], None]
    check: str  # the check that must fail
    severity: str
    table: str
    count: int
    example: str  # must appear in the summary
    overrides: dict = field(default_factory=dict)


CASES = [
    Case("status-not-allowed", edit("orders", first(status="shipped")),
         "orders.status_allowed", "error", "orders", 1, "'shipped'"),
    Case("total-does-not-add-up", edit("orders", first(total=lambda r: str(int(r["total"]) + 1))),
         "orders.total_adds_up", "error", "orders", 1, "both columns equal"),
    Case("negative-discount", edit("orders", first(
        discount="-100", total=lambda r: str(int(r["subtotal"]) + 100 + int(r["shipping_fee"])))),
         "orders.discount_non_negative", "error", "orders", 1, "-100"),
    Case("order-of-unknown-customer", edit("orders", first(customer_id="C9999999")),
         "orders.customer_exists", "error", "orders", 1, "-> C9999999"),
    Case("line-of-unknown-order", edit("order_lines", first(order_id="O999999999")),
         "order_lines.order_exists", "error", "order_lines", 1, "-> O999999999"),
    Case("line-of-unknown-product", edit("order_lines", first(product_id="P-NOPE")),
         "order_lines.product_exists", "error", "order_lines", 1, "-> P-NOPE"),
    Case("line-amount-does-not-add-up", edit("order_lines", first(line_amount="1")),
         "order_lines.line_amount_adds_up", "error", "order_lines", 1, "both columns equal"),
    Case("shipment-of-unknown-order", edit("shipments", first(order_id="O888888888")),
         "shipments.order_exists", "error", "shipments", 1, "-> O888888888"),
    Case("order-in-the-future", edit("orders", first(ordered_at="2027-01-05 10:00:00")),
         "orders.ordered_at_in_range", "error", "orders", 1, "2027-01-05"),
    Case("customer-before-the-shop-opened", edit("customers", first(registered_at="1990-04-01 09:00:00")),
         "customers.registered_at_in_range", "error", "customers", 1, "1990-04-01"),
    Case("birth-date-in-the-future", edit("customers", first(birth_date="2030-01-01")),
         "customers.birth_date_in_range", "warning", "customers", 1, "2030-01-01"),
    Case("order-kind-not-allowed", edit("orders", first(order_kind="gift")),
         "orders.order_kind_allowed", "error", "orders", 1, "'gift'"),
    Case("cart-status-not-allowed", edit("carts", first(status="pending")),
         "carts.status_allowed", "error", "carts", 1, "'pending'"),
    Case("consent-channel-not-allowed", edit("consents", first(channel="fax")),
         "consents.channel_allowed", "error", "consents", 1, "'fax'"),
    Case("full-width-email", edit("customers", first(email="ｈａｎａｋｏ@example.jp")),
         "customers.email_no_fullwidth", "warning", "customers", 1, "ｈ***@example.jp"),  # masked, still full-width
    Case("stray-space-in-email", edit("customers", first(email="\u3000hanako@example.jp")),
         "customers.email_no_spaces", "warning", "customers", 1, "'\\u3000***@example.jp'"),
    Case("full-width-phone", edit("customers", first(phone="０９０ー１２３４ー５６７８")),
         "customers.phone_no_fullwidth", "warning", "customers", 1, "０９０ー****ー５６７８"),
    Case("malformed-phone", edit("customers", first(phone="090 1234 5678")),
         "customers.phone_format", "warning", "customers", 1, "090 **** 5678"),
    Case("wrong-type-over-threshold", edit("orders", first(total="abc")),
         "export.quarantine_share", "error", "_load_log", 1, "orders.csv: 1 of"),
    Case("wrong-type-under-threshold", edit("ad_spend", first(amount="1,200")),
         "export.quarantined_rows", "warning", "_quarantine", 1, "ad_spend.csv line 2: amount: '1,200' is not a valid integer",
         overrides={"settings": {"quarantine_share_max": 0.9}}),
    Case("rows-duplicated-in-file", edit("orders", doubled),
         "export.quarantine_share", "error", "_load_log", 1, "orders.csv: "),
    Case("yesterdays-file-resent", resend_yesterdays("orders"),
         "export.file_repeated", "error", "_load_log", 1,
         f"orders.csv is byte-identical to {YESTERDAY}/orders.csv"),
    Case("optional-column-renamed", rename_column("customers", "email", "mail"),
         "export.header", "warning", "(files)", 1, "customers.csv: missing email; unknown mail"),
    Case("empty-night", empty_night,
         "export.empty_night", "error", "_load_log", 1, f"night {TONIGHT}: 0 rows in 11 file(s)"),
    Case("volume-spike", edit("orders", many_more_orders),
         "export.volume", "warning", "_load_log", 1, "orders.csv: ",
         overrides={"settings": {"volume_min_baseline_rows": 1}}),
    # -- unsafe text on the way in (warnings; examples masked, the characters named) --
    Case("nul-in-name", edit("customers", first(last_name="山\x00田")),
         "customers.last_name_no_control_chars", "warning", "customers", 1, "'山*** (contains U+0000)'"),
    Case("crlf-in-address", edit("customers", first(address_line="1-2-3\r\nグランドビル")),
         "customers.address_line_no_control_chars", "warning", "customers", 1, "(contains U+000D, U+000A)"),
    Case("zero-width-in-name", edit("customers", first(first_name="花\u200b子")),
         "customers.first_name_no_control_chars", "warning", "customers", 1, "'花*** (contains U+200B)'"),
    Case("bidi-override-in-kana", edit("customers", first(last_name_kana="\u202eダマヤ")),
         "customers.last_name_kana_no_control_chars", "warning", "customers", 1, "'<U+202E>*** (contains U+202E)'"),
    Case("formula-in-name", edit("customers", first(last_name='=HYPERLINK("https://evil.example/","山田")')),
         "customers.last_name_no_formula_prefix", "warning", "customers", 1, "'=***'"),
    Case("formula-plus-in-city", edit("customers", first(city="+cmd|' /C calc'!A0")),
         "customers.city_no_formula_prefix", "warning", "customers", 1, "'+***'"),
    Case("formula-at-in-first-name", edit("customers", first(first_name="@SUM(1+1)*cmd")),
         "customers.first_name_no_formula_prefix", "warning", "customers", 1, "'@***'"),
    # -- absurd amounts: reported, not an overflow crash --
    Case("subtotal-near-int64-max", edit("orders", first(
        subtotal="9223372036854775800", discount="0", shipping_fee="550", total="9223372036854775800")),
         "orders.total_adds_up", "error", "orders", 1, "(9223372036854775800, 9223372036854776350)"),
    Case("absurd-amount", edit("orders", first(subtotal="250000000", discount="0", shipping_fee="550", total="250000550")),
         "orders.amounts_plausible", "error", "orders", 1, "subtotal 250000000, total 250000550 yen"),
    Case("stale-orders", edit("orders", lambda rows: [r | {"ordered_at": "2026-11-10 09:00:00"} for r in rows]),
         "orders.freshness_warn", "warning", "orders", 1, "newest order placed 2026-11-2",
         overrides={"settings": {"freshness_warn_hours": 24}}),
]


def run_raw(root: Path, overrides: dict | None = None):
    """Ingest the shop: every night is gated as it loads; the result is tonight's gate (tonight loads last)."""
    settings = settings_for(root, overrides)
    loads = stages.ingest(settings, TONIGHT)
    assert loads[-1].night == TONIGHT
    return settings, loads[-1].gate


def nothing_sent(settings: Settings) -> bool:
    if settings.ledger.exists():
        with duckdb.connect(str(settings.ledger), read_only=True) as con:
            if con.execute("select count(*) from sends").fetchone()[0]:
                return False
    return not settings.outbox_dir.exists() or not any(p.is_file() for p in settings.outbox_dir.rglob("*"))


def run_night(settings: Settings) -> stages.NightlyOutcome:
    """The stages in the flow's order; a failing stage raises and nothing after it runs."""
    outcome = stages.NightlyOutcome(night=TONIGHT)
    outcome.loads = stages.ingest(settings, TONIGHT)
    outcome.build = stages.build_marts(settings, outcome.run_date)
    outcome.mart_gate = stages.gate_marts(settings)
    outcome.campaigns = stages.send_campaigns(settings, outcome.run_date)
    return outcome


def test_the_corpus_has_at_least_twenty_distinct_faults():
    assert len({c.id for c in CASES}) == len(CASES) >= 20
    assert len({c.check for c in CASES}) >= 20


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_each_broken_export_is_caught(base, tmp_path, case: Case):
    root = copy_shop(base, tmp_path)
    case.mutate(root)
    if case.severity == "error":
        with pytest.raises(QualityGateFailed) as raised:
            run_raw(root, case.overrides)
        message = str(raised.value)
        assert "nothing was modelled or sent" in message
    else:
        settings, result = run_raw(root, case.overrides)  # a warning lets the run go on
        assert not result.errors, result.summary()
        message = result.summary()
    line = next((ln for ln in message.splitlines() if f"] {case.check} on {case.table}" in ln), None)
    assert line is not None, message
    assert line.lstrip().startswith(f"[{case.severity}]"), line
    assert f"failed for {case.count:,}" in line, line
    assert case.example in line, line
    page = (root / "reports" / f"quality-{TONIGHT}.html").read_text(encoding="utf-8")
    assert case.check in page


def test_a_clean_night_passes_every_raw_check(base, tmp_path):
    root = copy_shop(base, tmp_path)
    _, result = run_raw(root)
    assert not result.errors and not result.warnings, result.summary()
    assert result.passed == len(result.outcomes) > 60


def test_a_renamed_required_column_stops_the_run_before_anything_is_sent(base, tmp_path):
    root = copy_shop(base, tmp_path)
    rename_column("orders", "total", "amount")(root)
    settings = settings_for(root)
    with pytest.raises(ExportError, match=r"orders.csv: required column\(s\) total missing"):
        run_night(settings)
    assert nothing_sent(settings)


def test_an_undecodable_file_stops_the_run_before_anything_is_sent(base, tmp_path):
    root = copy_shop(base, tmp_path)
    path = tonight(root, "customers")
    path.write_bytes(path.read_bytes() + b'"C0009999","\xff\xfe\xff",broken\n')
    settings = settings_for(root)
    with pytest.raises(ExportError, match="cannot be decoded as CP932"):
        run_night(settings)
    assert nothing_sent(settings)
    with duckdb.connect(str(settings.warehouse), read_only=True) as con:  # nothing of the night was loaded
        assert con.execute("select count(*) from raw._load_log where night = ?", [TONIGHT]).fetchone()[0] == 0


def test_a_raw_error_stops_the_run_before_dbt_and_sends(base, tmp_path):
    root = copy_shop(base, tmp_path)
    edit("orders", first(customer_id="C9999999"))(root)
    settings = settings_for(root)
    with pytest.raises(QualityGateFailed, match="orders.customer_exists"):
        run_night(settings)
    assert nothing_sent(settings)
    with duckdb.connect(str(settings.warehouse), read_only=True) as con:  # dbt never ran
        assert not con.execute("select count(*) from duckdb_tables() where schema_name = 'marts'").fetchone()[0]


# -- the mart gate (one dbt build shared by these tests) ---------------------------------------


@pytest.fixture(scope="module")
def built(base, tmp_path_factory):
    root = copy_shop(base, tmp_path_factory.mktemp("built"))
    settings = settings_for(root)
    stages.ingest(settings, TONIGHT)
    # What the gate and the campaign engine read, and their parents (not every mart: faster).
    # dbt's own data tests are left out here (tests/test_dbt_models.py runs them): the gate is under test.
    modelling.build_models(settings, stages.send_date_for(TONIGHT), select=[
        "+campaign_audience", "+customer_rfm", "+f2_conversion", "+cohort_retention_monthly", "+customer_run_out",
        "--resource-type", "model", "--resource-type", "seed"])
    return root


def isolated(root: Path, tmp_path: Path) -> Settings:
    """The built warehouse with a ledger and outbox of this test's own."""
    return Settings(home=Path(__file__).resolve().parent.parent, data_dir=root, exports_dir=root / "exports",
                    ledger=tmp_path / "ledger.duckdb", outbox_dir=tmp_path / "outbox", reports_dir=tmp_path / "reports")


MART_FAULTS = [
    ("customer_rfm", "update marts.customer_rfm set recency_score = 7 where customer_id = "
     "(select min(customer_id) from marts.customer_rfm)", "customer_rfm.recency_score_1_to_5", "7"),
    ("dim_customers", "insert into marts.dim_customers select * from marts.dim_customers "
     "where customer_id = (select min(customer_id) from marts.dim_customers)",
     "dim_customers.one_row_per_customer", "failed for 2 of"),  # both copies of the key count
    ("f2_conversion", "update marts.f2_conversion set f2_conversion_rate = 1.5 where rowid = 0",
     "f2_conversion.rate_0_to_1", "1.5"),
    ("cohort_retention_monthly", "update marts.cohort_retention_monthly set retention_rate = -0.1 where rowid = 0",
     "cohort_retention_monthly.retention_rate_0_to_1", "-0.1"),
    ("campaign_audience", "update marts.campaign_audience set is_contactable = true, is_erased = true "
     "where customer_id = (select min(customer_id) from marts.campaign_audience)",
     "campaign_audience.contactable_has_consent", "'C"),
]


@pytest.mark.parametrize("table, sql, check, example", MART_FAULTS, ids=[f[2] for f in MART_FAULTS])
def test_a_mart_error_stops_the_run_before_any_send(built, tmp_path, table, sql, check, example):
    settings = isolated(built, tmp_path)
    with duckdb.connect(str(settings.warehouse)) as con:
        con.execute(f"create or replace table marts._kz_backup as select * from marts.{table}")
        con.execute(sql)
    try:
        with pytest.raises(QualityGateFailed) as raised:
            stages.gate_marts(settings)
            stages.send_campaigns(settings, stages.send_date_for(TONIGHT))  # never reached
    finally:
        with duckdb.connect(str(settings.warehouse)) as con:
            con.execute(f"create or replace table marts.{table} as select * from marts._kz_backup")
            con.execute("drop table marts._kz_backup")
    message = str(raised.value)
    line = next(ln for ln in message.splitlines() if f"] {check} on {table}" in ln)
    assert line.lstrip().startswith("[error]") and "failed for " in line and example in line, line
    assert "nothing was sent" in message
    assert nothing_sent(settings)


def test_a_pending_send_without_consent_stops_the_sends(built, tmp_path):
    from campaigns import ledger

    settings = isolated(built, tmp_path)
    with duckdb.connect(str(settings.warehouse)) as con:
        customer = con.execute("select customer_id from marts.dim_customers where not has_email_consent "
                               "order by customer_id limit 1").fetchone()[0]
        ledger.attach(con, settings.ledger)
        con.execute("""insert into ledger.sends (send_id, scenario_id, step_id, customer_id, anchor_date, channel,
                       due_date, run_date, status, planned_at, updated_at)
                       values ('s1', 'f2', 'day7', ?, ?, 'email', ?, ?, 'planned', now()::timestamp, now()::timestamp)""",
                    [customer, TONIGHT, TONIGHT, stages.send_date_for(TONIGHT)])
    with pytest.raises(QualityGateFailed) as raised:
        stages.gate_marts(settings)
    assert "ledger.pending_sends_have_consent on ledger.sends.customer_id" in str(raised.value)
    assert f"'{customer} (email, f2/day7)'" in str(raised.value)


def test_the_clean_demo_passes_every_mart_check_and_sends(built, tmp_path):
    settings = isolated(built, tmp_path)
    result = stages.gate_marts(settings)
    assert not result.errors and not result.warnings, result.summary()
    assert result.passed == len(result.outcomes) >= 12
    page = (settings.reports_dir / f"quality-{TONIGHT}.html").read_text(encoding="utf-8")
    assert "marts" in page
    campaigns = stages.send_campaigns(settings, stages.send_date_for(TONIGHT))
    assert sum(campaigns.planned.values()) > 0  # the positive control: a clean night does send


def test_every_night_a_run_loads_is_gated_before_it_is_kept(base, tmp_path):
    """Defect 1 of the reliability probe: a broken night 21 and a clean night 22, loaded by one run. Before,
    only night 22 was checked ("passed") and the run sent; night 21 stayed in raw, never checked again."""
    root = tmp_path / "shop"
    shutil.copytree(base / "exports", root / "exports")  # nothing loaded yet: the full history, 21 and 22 pending
    orders = root / "exports" / YESTERDAY.isoformat() / "orders.csv"
    original = orders.read_bytes()
    header, rows = read_rows(orders)
    rows[0]["total"] = str(int(rows[0]["total"]) + 1000)
    rows[1]["total"] = "abc"
    write_rows(orders, header, rows)
    settings = settings_for(root)
    with pytest.raises(QualityGateFailed) as raised:
        run_night(settings)
    message = str(raised.value)
    assert f"Night {YESTERDAY} was refused" in message and "orders.total_adds_up" in message
    assert f"{TONIGHT}" in message  # the night that waits for it
    assert nothing_sent(settings)
    with duckdb.connect(str(settings.warehouse), read_only=True) as con:
        kept = {r[0] for r in con.execute("select distinct _night from raw.orders").fetchall()}
        assert YESTERDAY not in kept and TONIGHT not in kept and kept  # the history is in, 21 and 22 are not
        assert con.execute("select count(*) from raw._load_log where night = ? and status = 'rejected'",
                           [YESTERDAY]).fetchone()[0] > 0
    # The next run, with night 21 still broken, checks it again and stops again.
    with pytest.raises(QualityGateFailed, match=f"Night {YESTERDAY} was refused"):
        run_night(settings)
    orders.write_bytes(original)  # the shop re-exports night 21
    outcome = run_night(settings)
    assert [(r.night, r.gate.gate, not r.gate.errors) for r in outcome.loads] == [
        (YESTERDAY, "raw data", True), (TONIGHT, "raw data", True)]
    assert sum(outcome.campaigns.planned.values()) > 0
