"""The Shopify source: a shop's Admin GraphQL API as kizuna's nightly exports.

**Nights.** The API has no nights; the source makes them. Night N covers every change with
`updated_at` up to the end of N (midnight after it, `KIZUNA_TIMEZONE`). The newest night is
the last one that ended at least `SETTLE` ago by Shopify's own clock (the `Date` header of
its answers), so a run at 02:00 loads yesterday. Each run pulls one window, from the sync
point (the end of the last night kept) to the end of the newest night; nights missed in
between fold into it (the merge keeps each row's newest version, so nothing is lost).

**First load and later nights.** Without a sync point the window has no start and each
resource is read by a bulk operation (`bulkOperationRunQuery`, polled until COMPLETED, its
JSONL result downloaded to disk and streamed line by line; a FAILED operation is run
again). With one, each resource is read through paginated queries filtered on
`updated_at:>'start' AND updated_at:<='end'`. Product variants are read whole each time
(a price, a product type and a unit cost change apart, each with its own time) and only
those changed in the window are written.

**The sync point** lives in the warehouse, `raw._shopify_sync` (one row per night kept:
the window, how it was read, the API version). `begin(con)` reads it; `commit(con, night)`
writes the night's row inside the night's transaction, so a night the gate refuses, or one
that fails to load, leaves it where it was, and the next run reads the same window again.
An empty window (nothing changed) is not a night: the sync point stays and the next window
starts from it.

**Landing.** The night's files (`<landing_dir>/shopify/<night>/<table>.csv`, kizuna's export
format, UTF-8) are what the loader reads, checks and archives. A landing folder is removed
by the next run once the archive holds its copies (the archive is what erasure scrubs).
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from dataclasses import dataclass
from datetime import date, datetime, time as clock_time, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from pydantic import SecretStr

from connectors.sources.base import ExportFileRef, ExportSource
from connectors.sources.export_format import EXPORT_FILES
from connectors.sources.shopify import mapping, queries
from connectors.sources.shopify.client import QueryTooCostly, ShopifyClient, read_lines
from connectors.sources.shopify.transform import CARRIED, Staging, write_night
from kizuna.errors import ExportError

if TYPE_CHECKING:
    import duckdb

log = logging.getLogger("kizuna.sources.shopify")

SYNC_TABLE = "raw._shopify_sync"
#: A night counts as over this long after its end: Shopify's search index lags writes by seconds.
SETTLE = timedelta(minutes=15)
#: A bulk operation that ends FAILED (or CANCELED / EXPIRED) is run again this many times in all.
BULK_ATTEMPTS = 3
#: Nodes asked per follow-up page of a nested connection.
CHILD_FOLLOW_UP = 100


@dataclass(frozen=True)
class Window:
    start: datetime | None  # UTC, exclusive; None: from the beginning (first load)
    end: datetime  # UTC, inclusive

    @property
    def mode(self) -> str:
        return "bulk" if self.start is None else "incremental"


@dataclass(frozen=True)
class SyncPoint:
    night: date
    end: datetime  # UTC


def _iso(at: datetime) -> str:
    return at.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class ShopifySource(ExportSource):
    encoding = "utf-8"
    carries = frozenset(CARRIED)

    def __init__(self, *, endpoint: str, token: SecretStr, shop: str, landing_dir: Path,
                 archive_dir: Path | None = None, timezone_name: str = "Asia/Tokyo",
                 client: ShopifyClient | None = None, poll_first: float = 0.2,
                 page_sizes: dict[str, int] | None = None) -> None:
        self.shop = shop
        self.client = client or ShopifyClient(endpoint, token)
        self.folder = Path(landing_dir) / "shopify"
        self.archive_dir = Path(archive_dir) if archive_dir else None
        self.zone = ZoneInfo(timezone_name)
        self.clock = mapping.Clock(timezone_name)
        self.poll_first = poll_first
        self.resources = [r if not page_sizes or r.name not in page_sizes else
                          queries.Resource(r.name, r.root, r.fields, page_sizes[r.name], r.filtered, r.child)
                          for r in queries.RESOURCES]
        self._begun = False
        self._sync: SyncPoint | None = None
        self._known: Path | None = None  # what the warehouse holds, as of `begin` (see `_snapshot`)
        self._shop_checked = False
        self._server_now: datetime | None = None
        self._pulled: dict[date, list[ExportFileRef]] = {}
        self._windows: dict[date, Window] = {}  # nights pulled by this run, not committed yet
        self._notes: dict[date, list[str]] = {}

    def __repr__(self) -> str:
        return f"ShopifySource({self.shop!r}, api {queries.API_VERSION}, landing={str(self.folder)!r})"

    # -- the sync point ---------------------------------------------------------------------

    def begin(self, con: "duckdb.DuckDBPyConnection") -> None:
        con.execute("create schema if not exists raw")
        con.execute(f"""create table if not exists {SYNC_TABLE} (
            shop varchar, night date, window_start_utc timestamp, window_end_utc timestamp, mode varchar,
            api_version varchar, files varchar, committed_at timestamp)""")
        row = con.execute(f"select night, window_end_utc from {SYNC_TABLE} where shop = ? "
                          "order by window_end_utc desc limit 1", [self.shop]).fetchone()
        self._sync = SyncPoint(row[0], row[1].replace(tzinfo=timezone.utc)) if row else None
        self._known = self._work() / "known"
        _snapshot(con, self._known)
        self._clean_landing()
        self._begun = True

    def commit(self, con: "duckdb.DuckDBPyConnection", night: date) -> None:
        window = self._windows.get(night)
        if window is None:  # a night read from landing files already kept: its row is there
            return
        files = ",".join(ref.file_name for ref in self._pulled.get(night, []))
        con.execute(f"insert into {SYNC_TABLE} values (?, ?, ?, ?, ?, ?, ?, ?)",
                    [self.shop, night, window.start.replace(tzinfo=None) if window.start else None,
                     window.end.replace(tzinfo=None), window.mode, queries.API_VERSION, files,
                     datetime.now(timezone.utc).replace(tzinfo=None)])
        self._sync = SyncPoint(night, window.end)
        del self._windows[night]

    @property
    def sync_point(self) -> SyncPoint | None:
        """The end of the last night kept (after `begin`)."""
        return self._sync

    # -- nights -----------------------------------------------------------------------------

    def night_end(self, night: date) -> datetime:
        """The end of `night` (midnight after it, shop time) in UTC."""
        return datetime.combine(night + timedelta(days=1), clock_time(0), tzinfo=self.zone).astimezone(timezone.utc)

    def newest_night(self) -> date:
        """The last night over by Shopify's clock (its `Date` header; ours if it sends none)."""
        self._check_shop()
        now = self._server_now or datetime.now(timezone.utc)
        night = now.astimezone(self.zone).date() - timedelta(days=1)
        if now < self.night_end(night) + SETTLE:
            night -= timedelta(days=1)
        return night

    def nights(self) -> list[date]:
        newest = self.newest_night()
        landed = {n for n in self._landed() if n <= newest}
        return sorted(landed | {newest})

    def files_dir(self, night: date) -> Path | None:
        # kizuna writes these files itself, leaving out by design the columns Shopify cannot carry:
        # the header check of a cart's own export has nothing to say about them.
        return None

    def ignored(self, night: date | None = None) -> list[str]:
        if night is not None:
            return list(self._notes.get(night, []))
        return [note for notes in self._notes.values() for note in notes]

    def files(self, night: date) -> list[ExportFileRef]:
        if not self._begun:
            raise ExportError("The Shopify source reads its sync point from the warehouse first: call "
                              "begin(con) before files() (load_pending does).")
        if self._sync is not None and night <= self._sync.night:
            return self._landing_refs(night)  # kept already: the loader skips files it has loaded
        if night not in self._pulled:
            window = Window(self._sync.end if self._sync else None, self.night_end(night))
            self._pulled[night] = self._pull(night, window)
        return self._pulled[night]

    # -- pulling one window -----------------------------------------------------------------

    def _pull(self, night: date, window: Window) -> list[ExportFileRef]:
        self._check_shop()
        started = time.perf_counter()
        work = self._work() / night.isoformat()
        shutil.rmtree(work, ignore_errors=True)
        notes: list[str] = []
        try:  # the work folder holds personal data: it goes, whatever happens
            staging = Staging(work / "records")
            try:
                for resource in self.resources:
                    search = queries.window_search(_iso(window.start) if window.start else None,
                                                   _iso(window.end)) if resource.filtered else None
                    before = sum(staging.counts.values())
                    if window.mode == "bulk":
                        self._bulk(resource, search, staging, window, work, notes)
                    else:
                        self._pages(resource, search, staging, window, notes)
                    log.info("shopify: %s: %d object(s) read (%s)", resource.name,
                             sum(staging.counts.values()) - before, window.mode)
            finally:
                staging.close()
            out = work / "out"
            result = write_night(work / "records", out, self._known, work)
            notes += result.notes
            dest = self.folder / night.isoformat()
            shutil.rmtree(dest, ignore_errors=True)
            if result.rows:
                dest.parent.mkdir(parents=True, exist_ok=True)
                out.rename(dest)
                self._windows[night] = window
        finally:
            shutil.rmtree(work, ignore_errors=True)
        self._notes[night] = notes
        for note in notes:
            log.warning("shopify night %s: %s", night, note)
        stats = self.client.stats
        log.info("shopify night %s (%s, %s .. %s): %s in %.1f s; %d request(s), %d THROTTLED waited out, %.1f s "
                 "waited for the cost budget, %d retried", night, window.mode,
                 _iso(window.start) if window.start else "the beginning", _iso(window.end),
                 ", ".join(f"{t} {n:,}" for t, n in result.rows.items()) or "no change",
                 time.perf_counter() - started, stats.requests, stats.throttled, stats.waited_seconds, stats.retried)
        return self._landing_refs(night) if result.rows else []

    def _records(self, node: dict[str, Any], parent: str | None, window: Window,
                 notes: list[str]) -> list[tuple[str, dict[str, Any]]]:
        kind = mapping.gid_type(node.get("id"))
        if kind == "Customer":
            return mapping.customer(node, self.clock)
        if kind == "Order":
            if len(node.get("fulfillments") or []) >= queries.FULFILLMENTS_PER_ORDER:
                notes.append(f"shipments: order {mapping.legacy_id(node['id'])} has "
                             f"{queries.FULFILLMENTS_PER_ORDER} or more fulfilments; only the first "
                             f"{queries.FULFILLMENTS_PER_ORDER} are read")
            return mapping.order(node, self.clock)
        if kind == "LineItem":
            return mapping.line_item(node, parent)
        if kind == "ProductVariant":
            records = mapping.variant(node, self.clock)
            times = [t for t in (node.get("updatedAt"), (node.get("product") or {}).get("updatedAt"),
                                 (node.get("inventoryItem") or {}).get("updatedAt")) if t]
            latest = max(datetime.fromisoformat(t) for t in times) if times else None
            records[0][1]["in_window"] = latest is not None and latest <= window.end and (
                window.start is None or latest > window.start)
            return records
        if kind == "AbandonedCheckout":
            return mapping.checkout(node, self.clock)
        if kind == "AbandonedCheckoutLineItem":
            return mapping.checkout_line(node, parent)
        raise ExportError(f"Shopify returned an object the source did not ask for ({kind or node.get('id')!r}); "
                          "nothing of this night was kept. Report this message.")

    def _bulk(self, resource: queries.Resource, search: str | None, staging: Staging, window: Window, work: Path,
              notes: list[str]) -> None:
        query = resource.bulk_query(search)
        for attempt in range(1, BULK_ATTEMPTS + 1):
            operation = self.client.run_bulk(query, poll_first=self.poll_first)
            if operation.get("status") == "COMPLETED":
                break
            log.warning("shopify: the bulk operation for %s ended %s (%s); attempt %d of %d", resource.name,
                        operation.get("status"), operation.get("errorCode") or "no error code", attempt,
                        BULK_ATTEMPTS)
        else:
            raise ExportError(
                f"Shopify's bulk operation reading {resource.name} ended {operation.get('status')} "
                f"({operation.get('errorCode') or 'no error code'}) {BULK_ATTEMPTS} times. Nothing of this night was "
                "kept and the sync point did not move: run again later.")
        if not operation.get("url"):  # no object at all: Shopify writes no file
            return
        path = work / f"{resource.name}.jsonl"
        self.client.download(operation["url"], path)
        for line in read_lines(path):
            node = json.loads(line)
            parent = node.pop("__parentId", None)
            staging.add(self._records(node, parent, window, notes))
        path.unlink()

    def _pages(self, resource: queries.Resource, search: str | None, staging: Staging, window: Window,
               notes: list[str]) -> None:
        page, after = resource.page_size, None
        query = resource.page_query()
        while True:
            variables: dict[str, Any] = {"first": page, "after": after}
            if resource.filtered:
                variables["query"] = search
            try:
                data = self.client.execute(query, variables).data
            except QueryTooCostly as exc:
                if page == 1:
                    raise ExportError(f"Shopify finds even one {resource.name} object too costly to read ({exc}); "
                                      "report this message.") from None
                page = max(1, page // 2)
                continue
            connection = data.get(resource.root) or {}
            for edge in connection.get("edges") or []:
                self._page_node(resource, edge["node"], staging, window, notes)
            info = connection.get("pageInfo") or {}
            if not info.get("hasNextPage"):
                return
            after = info.get("endCursor")

    def _page_node(self, resource: queries.Resource, node: dict[str, Any], staging: Staging, window: Window,
                   notes: list[str]) -> None:
        children = node.pop(resource.child.field, None) if resource.child else None
        staging.add(self._records(node, None, window, notes))
        while children:
            for edge in children.get("edges") or []:
                staging.add(self._records(edge["node"], node["id"], window, notes))
            info = children.get("pageInfo") or {}
            if not info.get("hasNextPage"):
                return
            data = self.client.execute(resource.child_query(), {"id": node["id"], "first": CHILD_FOLLOW_UP,
                                                                 "after": info.get("endCursor")}).data
            children = (data.get("node") or {}).get(resource.child.field)  # type: ignore[union-attr]

    # -- the shop ---------------------------------------------------------------------------

    def _check_shop(self) -> None:
        """Once: the shop answers with this token, counts in yen, and what time Shopify has."""
        if self._shop_checked:
            return
        result = self.client.execute(queries.SHOP)
        self._server_now = result.server_time
        shop = result.data.get("shop") or {}
        currency = shop.get("currencyCode")
        if currency and currency != "JPY":
            raise ExportError(f"The shop {self.shop} keeps its accounts in {currency}; kizuna counts money in whole "
                              "yen (docs/export-format.md), so it cannot load this shop.")
        zone = shop.get("ianaTimezone")
        if zone and zone != self.zone.key:
            log.warning("shopify: the shop's time zone is %s but KIZUNA_TIMEZONE is %s: nights and times follow "
                        "KIZUNA_TIMEZONE", zone, self.zone.key)
        self._shop_checked = True

    # -- landing ----------------------------------------------------------------------------

    def _work(self) -> Path:
        work = self.folder / ".work"
        work.mkdir(parents=True, exist_ok=True)
        return work

    def _landed(self) -> list[date]:
        out = []
        if self.folder.is_dir():
            for entry in self.folder.iterdir():
                try:
                    night = date.fromisoformat(entry.name)
                except ValueError:
                    continue
                if entry.is_dir() and not entry.is_symlink():
                    out.append(night)
        return sorted(out)

    def _landing_refs(self, night: date) -> list[ExportFileRef]:
        folder = self.folder / night.isoformat()
        return [ExportFileRef(night, spec, folder / spec.file_name) for spec in EXPORT_FILES
                if (folder / spec.file_name).is_file()]

    def _clean_landing(self) -> None:
        """Drop landing folders the loader no longer needs: nights kept whose files the archive holds (the
        copy erasure scrubs), and attempts at nights not kept (the next pull writes them anew)."""
        for night in self._landed():
            folder = self.folder / night.isoformat()
            kept = self._sync is not None and night <= self._sync.night
            if kept and not self._archived(night):
                continue
            shutil.rmtree(folder, ignore_errors=True)

    def _archived(self, night: date) -> bool:
        if self.archive_dir is None:
            return False
        # The loader copies a file into the archive whole (then renames it) after the night commits; erasure
        # may rewrite that copy since, so its presence is the test, not its size.
        return all((self.archive_dir / night.isoformat() / ref.file_name).is_file()
                   for ref in self._landing_refs(night))


def _sql_path(path: Path) -> str:
    return str(path).replace("'", "''")


def _snapshot(con: "duckdb.DuckDBPyConnection", folder: Path) -> None:
    """What the warehouse holds that a pull must know (parquet files in `folder`):

    * e-mail and SMS consents: when a customer unsubscribes, Shopify keeps only the time of that
      change; the time they had opted in is what kizuna recorded before, the evidence it keeps;
    * the versions of consents and shipments kizuna has: Shopify sends an order's fulfilments and a
      customer's consent states again whenever the order or the customer changes, and a version
      kizuna already holds is left out of the night's file (the merge would ignore it, and two
      nights' files repeating the same rows byte for byte look like an export sent twice).
    """
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    tables = {r[0] for r in con.execute("select table_name from duckdb_tables() where schema_name = 'raw'").fetchall()}
    queries_ = {
        "consents": "select customer_id, channel, consented_at, updated_at from raw.consents "
                    "where channel in ('email', 'sms')",
        "shipments": "select shipment_id, updated_at from raw.shipments",
    }
    for table, sql in queries_.items():
        if table in tables:
            con.execute(f"copy ({sql}) to '{_sql_path(folder / f'{table}.parquet')}' (format parquet)")
