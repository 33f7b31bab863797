"""Erasure that erases (APPI): `apply_erasures(settings)`, run every night right after the loader commits.

A customer row with `deleted_at` is a person who asked the shop to erase their data. Each
night, idempotently:

1. **Register.** Customers with `deleted_at` not yet in the erasure register are recorded
   in `ledger.erasures` (the ledger file survives warehouse rebuilds): only salted hashes
   of their customer id, e-mail, phone and LINE user id (kizuna/privacy/identity.py),
   with the time they asked. A registered customer whose row came back with another
   e-mail or phone gets those recorded too.
2. **Block look-alikes.** Any other customer id whose e-mail, phone or LINE user id hashes
   to a registered one goes on the do-not-contact list (`ledger.suppressions`, every
   channel, reason `erased_identity`), and that matching value is blanked like the rest.
3. **Purge**, everywhere kizuna keeps data:
   - every warehouse table (any schema) with a `customer_id` and personal columns: those
     columns set to null; `raw.customers.deleted_at` is put back when a re-imported row
     had lost it (erasure is sticky);
   - `raw._quarantine`: the person's rejected rows deleted (another customer's row that
     only carries an erased address: that value blanked);
   - provider events (`raw.message_events`, `raw.line_follow_events` and the webhook
     store's SQLite file): the address hash, bounce reason and JSON reduced to
     non-personal keys;
   - files: archived exports (and the landing folders of non-CSV sources) rewritten in their own encoding with the person's fields
     blanked; their outbox messages deleted and their `index.jsonl` lines redacted; their
     DM / call / insert list rows blanked; their values replaced in the report pages;
4. **Leave no copy behind.** When anything was purged from the warehouse, it is copied into
   a fresh DuckDB file that replaces the old one (DuckDB does not zero freed blocks), and
   the SQLite store is VACUUMed and its WAL truncated.

Most places are checked incrementally: the ledger's `erasure_checks` remembers, per table
or file, what was last checked (a watermark or the file's size and time) against which
state of the register; anything new or changed, and everything once the register grows,
is checked again, except archived files unchanged since they were read: their index
(`ledger.erasure_file_values`, hash prefixes of the identities each holds) says whether the
new entries are in them, and only those are read again. Crash safety: the register and the
suppressions are written first, the warehouse purge is one transaction, every file is
replaced atomically, and a rewrite or VACUUM that did not finish is flagged in
`ledger.erasure_meta` and done by the next run.

The caller must not hold the warehouse open: this opens it through `kizuna.warehouse.connect`
and replaces the file when it rewrites it.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import os
import re
import sqlite3
import time
from array import array
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from campaigns import ledger
from kizuna.config import Settings
from kizuna.i18n import gettext as _
from kizuna.errors import KizunaError
from kizuna.events import store
from connectors.sources import loader
from kizuna.privacy import files
from kizuna.privacy.identity import (
    KINDS,
    SQL_FUNCTION,
    column_kind,
    erasure_hash,
    erasure_salt,
    normalise,
    register_sql_hash,
    salt_check,
)
from kizuna.warehouse import connect

log = logging.getLogger("kizuna.privacy")

SUPPRESSION_REASON = "erased_identity"
#: Marks an event whose JSON was reduced (so it is not redacted again every night).
ERASED_MARK = "kizuna_erased"
#: What an erased person's provider events keep: enough to count them, nothing about who.
SENDGRID_KEPT = ("event", "sg_event_id", "sg_message_id", "timestamp", "send_id", "scenario_id", "step_id",
                 "type", "category", "asm_group_id")
LINE_KEPT = ("type", "timestamp", "webhookEventId", "mode", "deliveryContext")
#: List columns that say which message it was, not who: kept when a row is blanked.
LIST_KEPT_COLUMNS = frozenset({"send_id", "customer_id", "order_id", "shipment_id", "piece", "insert", "offer_code"})
#: Personal columns whose values are looked for in report pages (short codes such as a gender or a
#: prefecture would match everybody's; see docs/privacy.md).
REPORT_VALUE_COLUMNS = frozenset({"last_name", "first_name", "last_name_kana", "first_name_kana", "full_name",
                                  "name", "name_kana", "address", "address_line", "comment"})
MIN_REPORT_VALUE = 2
SEND_ID_IN_JSON = re.compile(rb'"send_id"\s*:\s*"([^"]*)"')

LEDGER_DDL = (
    """
    create table if not exists ledger.erasures (
        kind varchar not null,           -- customer_id | email | phone | line_user_id
        value_hash varchar not null,     -- kizuna.privacy.erasure_hash(kind, value, salt)
        customer_hash varchar not null,  -- the hash of the erased customer's id (groups a person's rows)
        erased_at timestamp,             -- when the customer asked (their deleted_at)
        recorded_at timestamp not null,
        primary key (kind, value_hash)
    )
    """,
    """
    create table if not exists ledger.erasure_checks (
        place varchar primary key,       -- a warehouse table, the event store, or a file under the data folder
        fingerprint varchar,             -- watermark, or size and modification time of the file
        state varchar not null,          -- the register (or purge list) it was checked against
        checked_at timestamp not null
    )
    """,
    """
    create table if not exists ledger.erasure_file_values (
        place varchar not null,          -- an archived or landed file, as in erasure_checks
        fingerprint varchar not null,    -- its size and modification time when it was read
        value_prefix ubigint             -- the first 64 bits of the erasure hash of each customer id, e-mail, phone
                                         -- and LINE user id it holds (one null row: it holds none)
    )
    """,
    """
    create table if not exists ledger.erasure_meta (
        key varchar primary key,         -- salt_check, warehouse_rewrite, events_vacuum
        value varchar not null
    )
    """,
)


@dataclass
class ErasureResult:
    """What one `apply_erasures` did."""

    newly_erased: int = 0          # customers recorded in the register tonight
    repurged: int = 0              # customers erased before whose data came back (re-import) and was purged again
    blocked_by_identity: int = 0   # other customer ids newly suppressed: an erased e-mail / phone / LINE id
    blanked: Counter = field(default_factory=Counter)  # place -> rows (or lines, files) blanked, deleted or redacted
    files_rewritten: int = 0
    files_deleted: int = 0
    warehouse_rewritten: bool = False
    events_store_vacuumed: bool = False
    seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)

    @property
    def purged_anything(self) -> bool:
        return bool(sum(self.blanked.values()) or self.files_deleted or self.files_rewritten)

    def summary(self, prefixed: bool = True) -> str:
        """One line for the console and the log, in KIZUNA_LOCALE (`prefixed`: starting with "erasure: ")."""
        head = (_("erasure: ") if prefixed else "") + _(
            "{erased} customer(s) newly erased, {repurged} re-purged, {blocked} blocked by identity").format(
            erased=self.newly_erased, repurged=self.repurged, blocked=self.blocked_by_identity)
        seconds = _(" ({seconds} s)").format(seconds=f"{self.seconds:.1f}")
        if not self.purged_anything and not self.warehouse_rewritten and not self.events_store_vacuumed:
            return head + _("; nothing left to purge") + seconds
        places = ", ".join(f"{place} {n}" for place, n in sorted(self.blanked.items()) if n)
        text = head + _("; blanked {places}; {rewritten} file(s) rewritten, {deleted} deleted").format(
            places=places or _("nothing"), rewritten=self.files_rewritten, deleted=self.files_deleted)
        if self.warehouse_rewritten:
            text += _("; warehouse rewritten")
        if self.events_store_vacuumed:
            text += _("; event store vacuumed")
        if self.warnings:
            text += _("; {n} warning(s)").format(n=len(self.warnings))
        return text + seconds


def apply_erasures(settings: Settings) -> ErasureResult:
    """Record, purge and block erased customers everywhere kizuna keeps data (see the module docstring).

    Idempotent; cheap on a night with nothing new. Call it when no other connection holds the
    warehouse (it may replace the file). Raises `KizunaError` when the salt changed since erasures
    were recorded (they could no longer be matched) or a place cannot be purged.
    """
    started = time.perf_counter()
    result = ErasureResult()
    if not Path(settings.warehouse).exists():  # type: ignore[arg-type]
        result.seconds = time.perf_counter() - started
        return result
    run = _Run(settings, erasure_salt(settings), result)
    con = connect(settings.warehouse)  # type: ignore[arg-type]
    try:
        run.con = con
        run.prepare()
        if run.has_customers():
            run.in_warehouse()
            run.in_files()
        run.in_event_store()
        run.save_checks()
        result.repurged = len(run.repurged - run.newly - {""})
        rewrite = run.meta("warehouse_rewrite") == "pending"
        con.execute("checkpoint")
    finally:
        con.close()
    if rewrite:
        rewrite_warehouse(settings)
        result.warehouse_rewritten = True
        with connect(settings.warehouse) as con:  # type: ignore[arg-type]
            ledger.attach(con, settings.ledger)  # type: ignore[arg-type]
            con.execute("delete from ledger.erasure_meta where key = 'warehouse_rewrite'")
    result.seconds = time.perf_counter() - started
    for warning in result.warnings:
        log.warning("erasure: %s", warning)
    log.info("%s", result.summary())
    return result


class _Run:
    """One `apply_erasures`: the connection, the salt, the register and what was done."""

    def __init__(self, settings: Settings, salt: str, result: ErasureResult) -> None:
        self.settings = settings
        self.salt = salt
        self.result = result
        self.con: duckdb.DuckDBPyConnection = None  # type: ignore[assignment]
        self.register: dict[str, set[str]] = {k: set() for k in KINDS}
        self.state = "0"  # the register's version: its row count (it only grows)
        self.purge_sends: dict[str, tuple[str, str]] = {}  # send_id -> (channel, customer_id)
        self.known_values: set[str] = set()  # plaintext values purged tonight: looked for in report pages
        self.redacted_values: set[str] = set()
        self.email_sha256s: set[str] = set()  # the event store's unsalted hashes of purged addresses
        self.repurged: set[str] = set()  # customer hashes of registered customers whose data came back
        self.newly: set[str] = set()
        self.checks: dict[str, tuple[str | None, str]] = {}  # place -> (fingerprint, state), from the ledger
        self.unsaved_checks: dict[str, tuple[str | None, str]] = {}
        self.customers_mark: str | None = None
        self.line_mark: str | None = None

    # -- ledger bookkeeping ---------------------------------------------------------------

    def prepare(self) -> None:
        con = self.con
        con.execute("set memory_limit = ?", [self.settings.duckdb_memory_limit])
        ledger.attach(con, self.settings.ledger)  # type: ignore[arg-type]
        for ddl in LEDGER_DDL:
            con.execute(ddl)
        check = salt_check(self.salt)
        stored = self.meta("salt_check")
        if stored is None:
            con.execute("insert into ledger.erasure_meta values ('salt_check', ?)", [check])
        elif stored != check:
            raise KizunaError(
                "The erasure salt is not the one the register of erased customers was recorded with, so no "
                "recorded erasure could be recognised. Restore <data folder>/erasure.salt from the backup made "
                "with the ledger, or set KIZUNA_ERASURE_SALT to the value used before; nothing was changed.")
        register_sql_hash(con, self.salt)
        self.load_register()
        self.checks = {place: (fp, state) for place, fp, state in
                       con.execute("select place, fingerprint, state from ledger.erasure_checks").fetchall()}

    def meta(self, key: str) -> str | None:
        row = self.con.execute("select value from ledger.erasure_meta where key = ?", [key]).fetchone()
        return row[0] if row else None

    def set_meta(self, key: str, value: str | None) -> None:
        self.con.execute("delete from ledger.erasure_meta where key = ?", [key])
        if value is not None:
            self.con.execute("insert into ledger.erasure_meta values (?, ?)", [key, value])

    def load_register(self) -> None:
        self.register = {k: set() for k in KINDS}
        for kind, value_hash in self.con.execute("select kind, value_hash from ledger.erasures").fetchall():
            self.register.setdefault(kind, set()).add(value_hash)
        self.state = str(sum(len(v) for v in self.register.values()))

    def checked(self, place: str) -> tuple[str | None, str] | None:
        return self.checks.get(place)

    def mark_checked(self, place: str, fingerprint: str | None, state: str) -> None:
        """Remember that `place` was checked (written to the ledger by `save_checks`)."""
        self.checks[place] = self.unsaved_checks[place] = (fingerprint, state)

    def save_checks(self) -> None:
        if not self.unsaved_checks:
            return
        rows = [[place, fp, state] for place, (fp, state) in self.unsaved_checks.items()]
        self.con.execute("create or replace temp table _kz_checks (place varchar, fingerprint varchar, state varchar)")
        self.con.executemany("insert into _kz_checks values (?, ?, ?)", rows)
        self.con.execute("insert or replace into ledger.erasure_checks "
                         "select place, fingerprint, state, now()::timestamp from _kz_checks")
        self.unsaved_checks.clear()

    def since(self, place: str, table: str, column: str) -> tuple[str, list, str | None]:
        """(where clause, params, new watermark): the rows of `table` to check. All of them when the
        register changed since the last check, or the table went back in time (a restored backup)."""
        newest = self.con.execute(f"select cast(max({column}) as varchar) from {table}").fetchone()[0]
        prev = self.checked(place)
        if prev is None or prev[1] != self.state or prev[0] is None or newest is None or newest < prev[0]:
            return "", [], newest
        return f"where {column} > cast(? as timestamp)", [prev[0]], newest

    # -- the warehouse --------------------------------------------------------------------

    def has_customers(self) -> bool:
        return ("raw", "customers") in self.tables()

    def tables(self) -> dict[tuple[str, str], list[tuple[str, str]]]:
        """Every base table of the warehouse (not the ledger, not temporary) with its columns and types."""
        out: dict[tuple[str, str], list[tuple[str, str]]] = {}
        for schema, table, column, type_ in self.con.execute("""
                select c.schema_name, c.table_name, c.column_name, c.data_type
                from duckdb_columns() c join duckdb_tables() t
                  on t.database_name = c.database_name and t.schema_name = c.schema_name
                 and t.table_name = c.table_name
                where c.database_name = current_database() and not t.temporary
                order by c.schema_name, c.table_name, c.column_index""").fetchall():
            out.setdefault((schema, table), []).append((column, type_))
        return out

    def in_warehouse(self) -> None:
        con = self.con
        self.find_customers()
        self.suppress_blocked()
        con.execute("""create or replace temp table _kz_erased as
            select distinct customer_id from raw.customers where deleted_at is not null
            union select customer_id from _kz_hit where is_erased""")
        for send_id, channel, customer_id in con.execute("""
                select send_id, channel, customer_id from ledger.sends
                where customer_id in (select customer_id from _kz_erased)
                   or customer_id in (select customer_id from _kz_blocked)""").fetchall():
            self.purge_sends[send_id] = (channel, customer_id)
        plan = self.warehouse_plan()
        quarantine, quarantine_mark = self.quarantine_plan()
        events = self.event_plan()
        if plan or quarantine or events:
            was_pending = self.meta("warehouse_rewrite") == "pending"
            self.set_meta("warehouse_rewrite", "pending")  # before the purge: a crash after it still rewrites
            self.redact_reports()
            changed = self.purge_warehouse(plan, quarantine, events)
            if not changed and not was_pending:
                self.set_meta("warehouse_rewrite", None)
        self.mark_checked("warehouse:raw.customers", self.customers_mark, self.state)
        if quarantine_mark is not None:
            self.mark_checked("warehouse:raw._quarantine", quarantine_mark, self.state)
        if self.line_mark is not None:
            self.mark_checked("warehouse:raw.line_follow_events", self.line_mark, self.state)
        self.save_checks()

    def find_customers(self) -> None:
        """Hash the customers to check, record new erasures, and classify: `_kz_hit` (erased or not, which
        identity matched) and `_kz_blocked` (other ids carrying an erased identity)."""
        h = SQL_FUNCTION
        for _ in range(2):
            where, params, self.customers_mark = self.since("warehouse:raw.customers", "raw.customers", "_loaded_at")
            self.con.execute(f"""create or replace temp table _kz_cand as
                select customer_id, deleted_at, {h}('customer_id', customer_id) as h_id,
                       {h}('email', email) as h_email, {h}('phone', phone) as h_phone,
                       {h}('line_user_id', line_user_id) as h_line
                from raw.customers {where}""", params)
            before = self.state
            self.record_erasures()
            if self.state == before or not where:
                break  # a register that grew must be checked against every customer, not only tonight's
        self.con.execute("""create or replace temp table _kz_reg as
            select kind, value_hash from ledger.erasures""")
        self.con.execute("""create or replace temp table _kz_hit as
            select c.customer_id, c.deleted_at, c.h_id,
                   c.h_id in (select value_hash from _kz_reg where kind = 'customer_id') as is_erased,
                   coalesce(c.h_email in (select value_hash from _kz_reg where kind = 'email'), false) as m_email,
                   coalesce(c.h_phone in (select value_hash from _kz_reg where kind = 'phone'), false) as m_phone,
                   coalesce(c.h_line in (select value_hash from _kz_reg where kind = 'line_user_id'), false) as m_line
            from _kz_cand c""")
        self.con.execute("""create or replace temp table _kz_blocked as
            select customer_id, m_email, m_phone, m_line from _kz_hit
            where not is_erased and (m_email or m_phone or m_line)""")

    def record_erasures(self) -> None:
        """Register customers with deleted_at (and new identities of registered ones): hashes only."""
        con = self.con
        con.execute("""create or replace temp table _kz_new as
            select c.*, coalesce(c.deleted_at, r.erased_at) as erased_at, r.customer_hash is not null as known
            from _kz_cand c
            left join (select customer_hash, min(erased_at) as erased_at from ledger.erasures
                       where kind = 'customer_id' group by customer_hash) r on r.customer_hash = c.h_id
            where c.deleted_at is not null or r.customer_hash is not null""")
        self.newly |= {r[0] for r in con.execute("select distinct h_id from _kz_new where not known").fetchall()}
        con.execute("""
            insert into ledger.erasures (kind, value_hash, customer_hash, erased_at, recorded_at)
            select kind, value_hash, customer_hash, erased_at, now()::timestamp from (
                select 'customer_id' as kind, h_id as value_hash, h_id as customer_hash, erased_at from _kz_new
                union all select 'email', h_email, h_id, erased_at from _kz_new
                union all select 'phone', h_phone, h_id, erased_at from _kz_new
                union all select 'line_user_id', h_line, h_id, erased_at from _kz_new
            ) n
            where value_hash is not null
              and not exists (select 1 from ledger.erasures e where e.kind = n.kind and e.value_hash = n.value_hash)
            qualify row_number() over (partition by kind, value_hash order by erased_at nulls last, customer_hash) = 1
        """)
        self.load_register()
        self.result.newly_erased = len(self.newly)

    def suppress_blocked(self) -> None:
        rows = self.con.execute("""
            select distinct customer_id from _kz_blocked b
            where not exists (select 1 from ledger.suppressions s where s.customer_id = b.customer_id
                              and s.channel is null and s.reason = ?)
            order by customer_id""", [SUPPRESSION_REASON]).fetchall()
        for (customer_id,) in rows:
            ledger.suppress(self.con, customer_id, SUPPRESSION_REASON)
        self.result.blocked_by_identity = len(rows)

    def warehouse_plan(self) -> list[tuple[str, str]]:
        """[(table, update statement)] for every table holding personal data of an erased or blocked
        customer that is still there; collects those values for the report pages first."""
        plan = []
        erased = "cast(t.customer_id as varchar) in (select customer_id from _kz_erased)"
        for (schema, table), columns in self.tables().items():
            names = {c for c, _ in columns}
            if "customer_id" not in names:
                continue
            kinds = {c: column_kind(c, t) for c, t in columns if c != "customer_id"}
            personal = [c for c, k in kinds.items() if k is not None]
            if not personal:
                continue
            qualified = f'"{schema}"."{table}"'
            any_left = " or ".join(f't."{c}" is not null' for c in personal)
            self.collect_values(f"select {', '.join(f't.{_q(c)}' for c in personal)} from {qualified} t "
                                f"where {erased} and ({any_left})", personal)
            sets = [f'"{c}" = null' for c in personal]
            if (schema, table) == ("raw", "customers"):
                sets.append("deleted_at = coalesce(t.deleted_at, (select min(e.erased_at) from ledger.erasures e "
                            f"where e.kind = 'customer_id' and e.value_hash = {SQL_FUNCTION}('customer_id', "
                            "t.customer_id)))")
                any_left += " or t.deleted_at is null"
            plan.append((f"{schema}.{table}", f"update {qualified} t set {', '.join(sets)} "
                                              f"where {erased} and ({any_left}) returning t.customer_id"))
            # Another customer carrying an erased identity: only the matching columns are blanked.
            matching = {c: f"b.{flag}" for c, k in kinds.items()
                        for kind, flag in (("email", "m_email"), ("phone", "m_phone"), ("line_user_id", "m_line"))
                        if k == kind}
            if matching:
                join = "from _kz_blocked b where cast(t.customer_id as varchar) = b.customer_id"
                left = " or ".join(f"({flag} and t.{_q(c)} is not null)" for c, flag in matching.items())
                values = ", ".join(f"case when {flag} then t.{_q(c)} end" for c, flag in matching.items())
                self.collect_values(f"select {values} from {qualified} t join _kz_blocked b "
                                    f"on cast(t.customer_id as varchar) = b.customer_id where {left}", list(matching))
                sets = ", ".join(f"{_q(c)} = case when {flag} then null else t.{_q(c)} end"
                                 for c, flag in matching.items())
                plan.append((f"{schema}.{table}", f"update {qualified} t set {sets} {join} and ({left}) "
                                                  "returning null"))
        return plan

    def collect_values(self, sql: str, columns: list[str]) -> None:
        for row in self.con.execute(sql).fetchall():
            self.remember(dict(zip(columns, row)))

    def remember(self, values: dict[str, object]) -> None:
        """Keep the plaintext values about to be purged that could appear in a report page."""
        for column, value in values.items():
            if value is None or not isinstance(value, str):
                continue
            kind = column_kind(column)
            if kind in ("email", "phone", "line_user_id") or column.lower() in REPORT_VALUE_COLUMNS:
                text = value.strip()
                if len(text) >= MIN_REPORT_VALUE:
                    self.known_values.add(text)
                    self.known_values.add(value)
                if kind == "email":
                    self.email_sha256s.add(store.hash_email(value) or "")
                    normal = normalise("email", value)
                    if normal:
                        self.known_values.add(normal)
                        self.email_sha256s.add(store.hash_email(normal) or "")
        self.email_sha256s.discard("")

    def quarantine_plan(self) -> tuple[list[tuple[int, str | None]], str | None]:
        """[(rowid, new raw_row or None to delete)] for quarantined rows that carry an erased identity."""
        if ("raw", "_quarantine") not in self.tables():
            return [], None
        where, params, mark = self.since("warehouse:raw._quarantine", "raw._quarantine", "quarantined_at")
        plan: list[tuple[int, str | None]] = []
        rows = self.con.execute(f"select rowid, file_name, \"key\", raw_row from raw._quarantine {where}",
                                params).fetchall()
        for rowid, file_name, key, raw_row in rows:
            change = self.quarantined_row(str(file_name or ""), key, raw_row)
            if change is not False:
                plan.append((rowid, change))  # type: ignore[arg-type]
        return plan, mark

    def quarantined_row(self, file_name: str, key: object, raw_row: str | None) -> str | None | bool:
        """None: delete the row (it is an erased customer's); a string: the row with erased values blanked;
        False: leave it."""
        table = file_name.split(".")[0]
        if table == "customers" and key is not None and self.erased_hash("customer_id", key):
            self.repurged.add(erasure_hash("customer_id", key, self.salt) or "")
            return None
        text = raw_row or ""
        try:
            obj = json.loads(text)
        except ValueError:
            obj = None
        if isinstance(obj, dict):
            kinds = {k: column_kind(k) for k in obj}
            ids = [obj[k] for k, kind in kinds.items() if kind == "customer_id"]
            if any(self.erased_hash("customer_id", i) for i in ids):
                self.remember(obj)
                self.repurged |= {erasure_hash("customer_id", i, self.salt) or "" for i in ids}
                return None
            blank = {k for k, kind in kinds.items() if kind in ("email", "phone", "line_user_id")
                     and self.erased_hash(kind, obj[k])}
            if not blank:
                return False
            self.remember({k: obj[k] for k in blank})
            return json.dumps({k: (None if k in blank else v) for k, v in obj.items()}, ensure_ascii=False)
        # A record DuckDB could not parse: its CSV text, columns unknown. Any field may be any identity.
        fields = next(csv.reader([text]), [])
        if any(self.erased_hash("customer_id", f) for f in fields):
            return None
        hits = [i for i, f in enumerate(fields)
                if any(self.erased_hash(k, f) for k in ("email", "phone", "line_user_id"))]
        if not hits:
            return False
        for i in hits:
            self.known_values.add(fields[i])
        return files.serialise_record(["" if i in hits else f for i, f in enumerate(fields)], "")

    def erased_hash(self, kind: str, value: object) -> bool:
        digest = erasure_hash(kind, value, self.salt) if value is not None else None
        return digest is not None and digest in self.register.get(kind, set())

    def event_plan(self) -> list[tuple[str, str, str, str]]:
        """[(table, key column, key, redacted json)] for provider events of purged customers."""
        plan: list[tuple[str, str, str, str]] = []
        tables = self.tables()
        self.line_mark = None
        if ("raw", "message_events") in tables:
            self.con.execute("create or replace temp table _kz_sends (send_id varchar)")
            if self.purge_sends:
                self.con.executemany("insert into _kz_sends values (?)", [[s] for s in self.purge_sends])
            self.con.execute("create or replace temp table _kz_sha (h varchar)")
            if self.email_sha256s:
                self.con.executemany("insert into _kz_sha values (?)", [[s] for s in self.email_sha256s])
            for key, raw_json in self.con.execute(f"""
                    select sg_event_id, raw_json from raw.message_events
                    where (send_id in (select send_id from _kz_sends) or email_sha256 in (select h from _kz_sha))
                      and (email_sha256 is not null or reason is not null
                           or coalesce(raw_json, '') not like '%"{ERASED_MARK}": true%')""").fetchall():
                plan.append(("raw.message_events", "sg_event_id", key, redact_json(raw_json, SENDGRID_KEPT)))
        if ("raw", "line_follow_events") in tables and self.register["line_user_id"]:
            where, params, self.line_mark = self.since("warehouse:raw.line_follow_events",
                                                       "raw.line_follow_events", "_loaded_at")
            cond = "where" if not where else where + " and"
            for key, user, raw_json in self.con.execute(
                    f"select webhook_event_id, line_user_id, raw_json from raw.line_follow_events "
                    f"{cond} line_user_id is not null", params).fetchall():
                if self.erased_hash("line_user_id", user):
                    plan.append(("raw.line_follow_events", "webhook_event_id", key,
                                 redact_json(raw_json, LINE_KEPT)))
        elif ("raw", "line_follow_events") in tables:
            self.line_mark = self.con.execute(
                "select cast(max(_loaded_at) as varchar) from raw.line_follow_events").fetchone()[0]
        return plan

    def purge_warehouse(self, plan: list[tuple[str, str]], quarantine: list[tuple[int, str | None]],
                        events: list[tuple[str, str, str, str]]) -> int:
        """Everything in one transaction; returns how many rows changed."""
        con = self.con
        changed = 0
        con.execute("begin transaction")
        try:
            for table, sql in plan:
                ids = [r[0] for r in con.execute(sql).fetchall()]
                self.result.blanked[table] += len(ids)
                changed += len(ids)
                self.repurged |= {erasure_hash("customer_id", i, self.salt) or "" for i in ids if i is not None}
            deletes = [[rowid] for rowid, new in quarantine if new is None]
            updates = [[new, rowid] for rowid, new in quarantine if new is not None]
            if deletes:
                con.executemany("delete from raw._quarantine where rowid = ?", deletes)
            if updates:
                con.executemany("update raw._quarantine set raw_row = ? where rowid = ?", updates)
            self.result.blanked["raw._quarantine"] += len(quarantine)
            changed += len(quarantine)
            for table, key_column, key, redacted in events:
                extra = ", email_sha256 = null, reason = null" if table == "raw.message_events" else \
                    ", line_user_id = null"
                con.execute(f"update {table} set raw_json = ?{extra} where {key_column} = ?", [redacted, key])
            self.result.blanked["raw events"] += len(events)
            changed += len(events)
            con.execute("commit")
        except duckdb.Error as exc:
            con.execute("rollback")
            raise KizunaError(f"Erasure could not purge the warehouse ({exc}); nothing of it was changed. "
                              "Fix the cause and run the night again: erasure picks up where it stopped.") from exc
        self.repurged.discard("")
        return changed

    # -- files ----------------------------------------------------------------------------

    def in_files(self) -> None:
        self.outbox()
        self.lists()
        self.archive()
        self.redact_reports()

    def file_due(self, path: Path, state: str) -> bool:
        st = path.stat()
        prev = self.checked(self.place(path))
        return prev is None or prev != (f"{st.st_size}:{st.st_mtime_ns}", state)

    def file_done(self, path: Path, state: str) -> None:
        st = path.stat()
        self.mark_checked(self.place(path), f"{st.st_size}:{st.st_mtime_ns}", state)

    def place(self, path: Path) -> str:
        try:
            return "file:" + path.relative_to(Path(self.settings.data_dir)).as_posix()  # type: ignore[arg-type]
        except ValueError:
            return "file:" + path.as_posix()

    def purge_state(self) -> str:
        """A version of the list of sends to purge (outbox, lists): a file is rechecked when it changes."""
        digest = hashlib.sha256("\n".join(sorted(self.purge_sends)).encode()).hexdigest()[:16]
        return f"{self.state}:{digest}"

    def outbox(self) -> None:
        outbox = Path(self.settings.outbox_dir)  # type: ignore[arg-type]
        for send_id, (channel, _) in self.purge_sends.items():
            for suffix in (".eml", ".txt", ".eml.part", ".txt.part"):
                path = outbox / channel / f"{send_id}{suffix}"
                if path.exists():
                    path.unlink()
                    self.result.files_deleted += 1
                    self.result.blanked["outbox messages"] += 1
        index = outbox / "index.jsonl"
        state = self.purge_state()
        if not index.exists() or not self.file_due(index, state):
            return

        def redact(line: dict) -> dict | None:
            if line.get("send_id") not in self.purge_sends or line.get(ERASED_MARK):
                return None
            return {"send_id": line.get("send_id"), "channel": line.get("channel"),
                    "scenario_id": line.get("scenario_id"), "step_id": line.get("step_id"),
                    "customer_id": line.get("customer_id"), "subject": None, "file": None, ERASED_MARK: True}

        def candidate(raw: bytes) -> bool:
            found = SEND_ID_IN_JSON.search(raw)
            return found is not None and found.group(1).decode("utf-8", "replace") in self.purge_sends

        n = files.redact_jsonl(index, redact, candidate)
        if n:
            self.result.blanked["outbox index lines"] += n
            self.result.files_rewritten += 1
        self.file_done(index, state)

    def lists(self) -> None:
        root = Path(self.settings.lists_dir or Path(self.settings.data_dir) / "lists")  # type: ignore[arg-type]
        if not root.is_dir():
            return
        state = self.purge_state()

        def decider(header: list[str]):
            if "send_id" not in header:
                return None
            i = header.index("send_id")
            blank = [j for j, name in enumerate(header) if name not in LIST_KEPT_COLUMNS]

            def decide(row: files.Row) -> set[int]:
                if row[i] not in self.purge_sends:
                    return set()
                self.remember({header[j]: row[j] for j in blank if row.has(j)})
                return set(blank)
            return decide

        for path in sorted(root.glob("*/*.csv")):
            if not self.file_due(path, state):
                continue
            scrub = files.scrub_csv(path, decider)
            if scrub.rewritten:
                self.result.blanked["list rows"] += scrub.rows_blanked
                self.result.files_rewritten += 1
            self.file_done(path, state)

    def archive(self) -> None:
        """Archived exports (`archive/<night>/`) and what sources other than `csv` landed in kizuna's format
        (`landing/<source>/<night>/`): the same CSV files, scrubbed alike."""
        archive, landing = Path(self.settings.archive_dir), Path(self.settings.landing_dir)  # type: ignore[arg-type]
        paths = sorted(archive.glob("*/*.csv")) + sorted(landing.glob("*/*/*.csv"))
        if not paths:
            return

        kept: array = array("Q")  # the file's identities that stay: its index (`file_values`)

        def decider(header: list[str]):
            kinds = [column_kind(name) for name in header]
            personal = [j for j, k in enumerate(kinds) if k not in (None, "customer_id")]
            if not personal:  # orders.csv and the like: the customer id only
                return None
            identities = [j for j in personal if kinds[j] in ("email", "phone", "line_user_id")]
            id_col = kinds.index("customer_id") if "customer_id" in kinds else None

            def decide(row: files.Row) -> set[int]:
                digest = erasure_hash("customer_id", row[id_col], self.salt) \
                    if id_col is not None and row.has(id_col) else None
                if digest is not None and digest in self.register["customer_id"]:
                    blank = {j for j in personal if row.has(j)}
                    if blank:  # (a row blanked before has nothing left)
                        self.remember({header[j]: row[j] for j in blank})
                        self.repurged.add(digest)
                    return blank
                if digest is not None:
                    kept.append(_prefix(digest))
                blank = set()
                for j in identities:
                    if row.has(j) and (value := erasure_hash(kinds[j], row[j], self.salt)) is not None:
                        if value in self.register[kinds[j]]:
                            blank.add(j)
                        else:
                            kept.append(_prefix(value))
                self.remember({header[j]: row[j] for j in blank})
                return blank
            return decide

        self.register_prefixes()
        for path in paths:
            if not self.file_due(path, self.state):
                continue
            if self.index_clears(path):  # none of its identities is in the register: nothing to blank
                self.file_done(path, self.state)
                continue
            landed = path.is_relative_to(landing)
            before = loader.file_checksum(path) if landed else ""
            del kept[:]
            scrub = files.scrub_csv(path, decider)
            if scrub.rewritten:
                self.result.blanked["archive rows"] += scrub.rows_blanked
                self.result.files_rewritten += 1
                if landed:  # the loader must take the scrubbed file for the version it loaded, not a new one
                    loader.log_scrubbed(self.con, path, before)
            self.file_done(path, self.state)
            if scrub.encoding:  # read (a file without personal columns is not: nothing to index)
                self.save_index(path, kept)
        self.repurged.discard("")

    # -- the archive's index: a night that registers an erasure does not read every archived file again --------

    def register_prefixes(self) -> None:
        """The register's hashes (64-bit prefixes) as a temporary table, for `index_clears`."""
        self.con.execute("create or replace temp table _kz_register (value_prefix ubigint)")
        prefixes = sorted({_prefix(h) for hashes in self.register.values() for h in hashes})
        if prefixes:
            self.con.execute("insert into _kz_register select unnest(?::ubigint[])", [prefixes])

    def index_clears(self, path: Path) -> bool:
        """Whether the file, unchanged since it was read in full, holds no identity in the register: the index
        (`ledger.erasure_file_values`) has every customer id, e-mail, phone and LINE user id it kept, as the
        first 64 bits of their erasure hashes. A file scrubbed, replaced or never read is read in full. A prefix
        shared by chance only means the file is read in full, never that a match is missed."""
        st = path.stat()
        fingerprint = f"{st.st_size}:{st.st_mtime_ns}"
        place = self.place(path)
        versions = self.con.execute("select count(distinct fingerprint), min(fingerprint) "
                                    "from ledger.erasure_file_values where place = ?", [place]).fetchone()
        if versions != (1, fingerprint):
            return False
        return not self.con.execute("select exists (select 1 from ledger.erasure_file_values v join _kz_register r "
                                    "using (value_prefix) where v.place = ?)", [place]).fetchone()[0]

    def save_index(self, path: Path, kept: array) -> None:
        """Replace the file's index with the identities it holds now (after any scrub)."""
        import numpy as np
        import pyarrow as pa

        st = path.stat()
        place = self.place(path)
        self.con.execute("delete from ledger.erasure_file_values where place = ?", [place])
        # A copy: a view of `kept` would stop it from being cleared for the next file while DuckDB holds the table.
        values = pa.table({"value_prefix": pa.array(np.frombuffer(kept, dtype=np.uint64).copy()) if kept
                           else pa.array([None], pa.uint64())})
        self.con.register("_kz_values", values)
        try:
            self.con.execute("insert into ledger.erasure_file_values select ?, ?, value_prefix from _kz_values",
                             [place, f"{st.st_size}:{st.st_mtime_ns}"])
        finally:
            self.con.unregister("_kz_values")

    def redact_reports(self) -> None:
        values = self.known_values - self.redacted_values
        root = Path(self.settings.reports_dir)  # type: ignore[arg-type]
        if not values or not root.is_dir():
            return
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            n = files.redact_literals(path, values)
            if n:
                self.result.blanked["report values"] += n
                self.result.files_rewritten += 1
        self.redacted_values |= values

    # -- the webhook event store (SQLite) -------------------------------------------------

    def in_event_store(self) -> None:
        path = Path(self.settings.events_store)  # type: ignore[arg-type]
        if not path.exists():
            return
        events = store.connect(path)
        try:
            # Freed cell space is zeroed as it is written (many builds, not all, do it by default); the
            # VACUUM below then drops freed pages and the WAL's old copies.
            events.execute("pragma secure_delete = on")
            changed = self.redact_store(events)
            if changed:
                self.result.blanked["event store"] += changed
                self.set_meta("events_vacuum", "pending")
            if self.meta("events_vacuum") == "pending":
                if vacuum_store(events):
                    self.set_meta("events_vacuum", None)
                    self.result.events_store_vacuumed = True
                else:
                    self.result.warnings.append(
                        f"the event store {path.name} is busy (the webhook service is reading it): its freed pages "
                        "are cleared by the next run")
        finally:
            events.close()

    def redact_store(self, events: sqlite3.Connection) -> int:
        """Redact the store's events of purged sends (and of purged addresses' hashes) and of erased LINE
        users. Only events that arrived since the last check are read, unless what is purged changed."""
        sendgrid_rows: list[tuple[int, str]] = []
        if self.purge_sends or self.email_sha256s:
            after, newest = self.store_watermark(events, "sendgrid_events", self.purge_state())
            events.execute("create temp table if not exists kz_sends (send_id text primary key)")
            events.execute("create temp table if not exists kz_sha (h text primary key)")
            events.execute("delete from kz_sends")
            events.execute("delete from kz_sha")
            events.executemany("insert or ignore into kz_sends values (?)", [[s] for s in self.purge_sends])
            events.executemany("insert or ignore into kz_sha values (?)", [[h] for h in self.email_sha256s])
            sendgrid_rows = events.execute(
                "select id, raw_json from sendgrid_events where id > ? "
                "and (send_id in (select send_id from kz_sends) or email_sha256 in (select h from kz_sha)) "
                "and (email_sha256 is not null or reason is not null or raw_json not like ?)",
                [after, f'%"{ERASED_MARK}": true%']).fetchall()
            self.mark_checked("events:sendgrid_events", str(newest), self.purge_state())
        line_rows = []
        if self.register["line_user_id"]:
            after, newest = self.store_watermark(events, "line_events", self.state)
            for rowid, user, raw_json in events.execute(
                    "select id, line_user_id, raw_json from line_events where id > ? and line_user_id is not null",
                    [after]).fetchall():
                if self.erased_hash("line_user_id", user):
                    line_rows.append((rowid, raw_json))
            self.mark_checked("events:line_events", str(newest), self.state)
        return self.write_store(events, sendgrid_rows, line_rows)

    def store_watermark(self, events: sqlite3.Connection, table: str, state: str) -> tuple[int, int]:
        """(read events with id above this, the newest id now); 0 when the state changed or the store
        was replaced (it holds fewer ids than were checked)."""
        newest = events.execute(f"select coalesce(max(id), 0) from {table}").fetchone()[0]
        prev = self.checked(f"events:{table}")
        if prev is None or prev[1] != state or prev[0] is None or int(prev[0]) > newest:
            return 0, newest
        return int(prev[0]), newest

    def write_store(self, events: sqlite3.Connection, sendgrid_rows: list[tuple[int, str]],
                    line_rows: list[tuple[int, str]]) -> int:
        if not sendgrid_rows and not line_rows:
            return 0
        changed = 0
        events.execute("begin immediate")
        try:
            for rowid, raw_json in sendgrid_rows:
                events.execute("update sendgrid_events set email_sha256 = null, reason = null, raw_json = ? "
                               "where id = ?", [redact_json(raw_json, SENDGRID_KEPT), rowid])
                changed += 1
            for rowid, raw_json in line_rows:
                events.execute("update line_events set line_user_id = null, raw_json = ? where id = ?",
                               [redact_json(raw_json, LINE_KEPT), rowid])
                changed += 1
            events.execute("commit")
        except BaseException:
            events.execute("rollback")
            raise
        return changed


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def redact_json(text: str | None, kept: Iterable[str]) -> str:
    """The event's JSON reduced to the `kept` keys, marked as erased."""
    try:
        obj = json.loads(text or "{}")
    except ValueError:
        obj = {}
    if not isinstance(obj, dict):
        obj = {}
    out = {k: obj[k] for k in kept if k in obj}
    out[ERASED_MARK] = True
    return json.dumps(out, ensure_ascii=False, sort_keys=True)


def vacuum_store(events: sqlite3.Connection) -> bool:
    """VACUUM the store (rebuilds every page: nothing freed survives) and truncate its WAL, which
    still holds the old pages; False when a reader kept the WAL from being truncated."""
    events.execute("vacuum")
    busy, _, _ = events.execute("pragma wal_checkpoint(truncate)").fetchone()
    return busy == 0


def _prefix(digest: str) -> int:
    """The first 64 bits of an erasure hash (hex), as the archive's index keeps them."""
    return int(digest[:16], 16)


def rewrite_warehouse(settings: Settings) -> None:
    """Copy the warehouse into a fresh DuckDB file and put it in place of the old one.

    DuckDB reuses freed blocks but does not zero them: a value updated to null can still be
    read from the file's bytes until the block is overwritten. A fresh copy holds live data
    only. The copy is checked (same tables, same row counts) before it replaces the original;
    the original is never modified, so a failure leaves it as it was.
    """
    path = Path(settings.warehouse)  # type: ignore[arg-type]
    fresh = path.with_name(path.name + ".erasure-rewrite")
    for stale in (fresh, fresh.with_name(fresh.name + ".wal")):
        stale.unlink(missing_ok=True)
    con = connect(path)
    try:
        con.execute("set memory_limit = ?", [settings.duckdb_memory_limit])
        source = con.execute("select current_database()").fetchone()[0]
        con.execute(f"attach '{fresh.as_posix()}' as kizuna_rewrite")
        try:
            con.execute(f"copy from database {_q(source)} to kizuna_rewrite")
            objects = ("select 'table', schema_name, table_name from duckdb_tables() where database_name = $db "
                       "union all select 'view', schema_name, view_name from duckdb_views() "
                       "where database_name = $db and not internal")
            before = sorted(con.execute(objects, {"db": source}).fetchall())
            after = sorted(con.execute(objects, {"db": "kizuna_rewrite"}).fetchall())
            if before != after:
                raise KizunaError(f"Erasure: the fresh copy of the warehouse lacks "
                                  f"{sorted(set(before) - set(after))}; the warehouse was left as it was.")
            for kind, schema, table in before:
                if kind != "table":
                    continue
                a = con.execute(f"select count(*) from {_q(source)}.{_q(schema)}.{_q(table)}").fetchone()[0]
                b = con.execute(f"select count(*) from kizuna_rewrite.{_q(schema)}.{_q(table)}").fetchone()[0]
                if a != b:
                    raise KizunaError(f"Erasure: the fresh copy of {schema}.{table} has {b} rows, not {a}; "
                                      "the warehouse was left as it was.")
        finally:
            con.execute("detach kizuna_rewrite")  # detaching checkpoints the copy
    except BaseException:
        con.close()
        fresh.unlink(missing_ok=True)
        raise
    con.close()
    for wal in (path.with_name(path.name + ".wal"), fresh.with_name(fresh.name + ".wal")):
        if wal.exists() and wal.stat().st_size:
            fresh.unlink(missing_ok=True)
            raise KizunaError(f"Erasure: {wal.name} was not checkpointed; the warehouse was left as it was. "
                              "Make sure no other process has it open and run again.")
        wal.unlink(missing_ok=True)
    with fresh.open("rb+") as fh:
        os.fsync(fh.fileno())
    os.replace(fresh, path)
    files.fsync_dir(path.parent)

