"""The HTTP side of the Shopify source: one GraphQL endpoint, its cost-based throttle, its bulk
operations.

* Every request carries the access token in `X-Shopify-Access-Token`; the token is a
  `SecretStr` opened only to build that header. It is never logged, never part of a repr or
  an error message, and never sent anywhere but the shop's GraphQL endpoint: a bulk
  operation's result is fetched from its (signed) URL without it.
* **Throttling** follows the cost figures Shopify returns in `extensions.cost`: the client
  remembers each query's `requestedQueryCost` and the bucket's `throttleStatus`
  (`currentlyAvailable`, `restoreRate`), and before sending a query whose last requested
  cost exceeds what has refilled since, it waits for the difference. A `THROTTLED` answer
  (HTTP 200 with that error code, or HTTP 429) is waited out the same way and sent again;
  it never reaches the caller as data.
* A 5xx answer, a dropped connection or a time-out is sent again after a back-off (reads
  are safe to repeat), up to `max_attempts`; then the night stops with what happened.
* 401/403/404 and GraphQL errors stop at once with a sentence saying what to check.
  So does a search the API could not read (`extensions.search` warnings): an ignored
  `updated_at` filter would silently return the whole shop.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import httpx
from pydantic import SecretStr

from connectors.sources.shopify import queries
from kizuna.errors import ExportError

log = logging.getLogger("kizuna.sources.shopify")

#: Scopes the access token needs (an error from Shopify about access names them).
SCOPES = ("read_customers", "read_orders", "read_all_orders", "read_products", "read_inventory")


class QueryTooCostly(Exception):
    """Shopify refused a query whose requested cost exceeds the per-query maximum (MAX_COST_EXCEEDED)."""


@dataclass
class Result:
    data: dict[str, Any]
    extensions: dict[str, Any]
    server_time: datetime | None


@dataclass
class ClientStats:
    requests: int = 0
    throttled: int = 0  # THROTTLED answers waited out
    retried: int = 0  # 5xx / transport failures sent again
    waited_seconds: float = 0.0  # slept for the cost bucket (before a query, or after THROTTLED)
    cost: float = 0.0  # actualQueryCost summed


def _backoff(attempt: int, base: float) -> float:
    return min(base * (2 ** attempt), 30.0)


class ShopifyClient:
    """A GraphQL client for one shop's Admin API at one pinned version."""

    def __init__(self, endpoint: str, token: SecretStr, *, timeout: float = 60.0, max_attempts: int = 5,
                 retry_base: float = 0.5, max_throttled: int = 200,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.endpoint = endpoint
        self._token = token
        self.max_attempts = max_attempts
        self.retry_base = retry_base
        self.max_throttled = max_throttled
        self._sleep = sleep
        self._http = httpx.Client(timeout=timeout, follow_redirects=False)
        self._downloads = httpx.Client(timeout=timeout, follow_redirects=True)
        self._costs: dict[tuple[str, str], float] = {}  # (query, variables' shape) -> last requested cost
        self._bucket: tuple[float, float, float, float] | None = None  # available, max, restore, at
        self.stats = ClientStats()

    def __repr__(self) -> str:
        return f"ShopifyClient({self.endpoint!r}, token=**********)"

    def close(self) -> None:
        self._http.close()
        self._downloads.close()

    # -- the cost bucket --------------------------------------------------------------------

    def _available_now(self) -> tuple[float, float] | None:
        if self._bucket is None:
            return None
        available, maximum, restore, at = self._bucket
        return min(maximum, available + restore * (time.monotonic() - at)), restore

    def _note_cost(self, key: tuple[str, str], extensions: dict[str, Any]) -> dict[str, Any] | None:
        cost = extensions.get("cost") or {}
        status = cost.get("throttleStatus") or {}
        if cost.get("requestedQueryCost") is not None:
            self._costs[key] = float(cost["requestedQueryCost"])
        if cost.get("actualQueryCost") is not None:
            self.stats.cost += float(cost["actualQueryCost"])
        if status.get("currentlyAvailable") is not None and status.get("restoreRate"):
            self._bucket = (float(status["currentlyAvailable"]), float(status.get("maximumAvailable") or 0) or 1e9,
                            float(status["restoreRate"]), time.monotonic())
        return cost or None

    def _wait_for(self, needed: float | None) -> None:
        """Sleep until the bucket holds `needed` points (as far as the last throttle status tells)."""
        state = self._available_now()
        if needed is None or state is None:
            return
        available, restore = state
        if needed > available:
            wait = (needed - available) / restore
            self.stats.waited_seconds += wait
            self._sleep(wait)

    # -- requests ---------------------------------------------------------------------------

    def execute(self, query: str, variables: dict[str, Any] | None = None) -> Result:
        """Run one query or mutation; THROTTLED and transient failures are waited out here."""
        variables = variables or {}
        key = (query, json.dumps(sorted((k, v) for k, v in variables.items() if k in ("first",))))
        attempt = throttled = 0
        while True:
            self._wait_for(self._costs.get(key))
            self.stats.requests += 1
            try:
                response = self._http.post(self.endpoint, json={"query": query, "variables": variables},
                                           headers=self._headers())
            except httpx.TransportError as exc:
                attempt = self._retry_or_stop(attempt, f"{type(exc).__name__}: {exc}")
                continue
            if response.status_code == 429:
                throttled = self._throttled(throttled, _retry_after(response))
                continue
            if response.status_code >= 500:
                attempt = self._retry_or_stop(attempt, f"HTTP {response.status_code}")
                continue
            if response.status_code != 200:
                raise self._refused(response)
            try:
                body = response.json()
            except ValueError:
                attempt = self._retry_or_stop(attempt, "an answer that is not JSON")
                continue
            extensions = body.get("extensions") or {}
            cost = self._note_cost(key, extensions)
            errors = body.get("errors") or []
            codes = {((e.get("extensions") or {}).get("code")) for e in errors if isinstance(e, dict)}
            if "THROTTLED" in codes:
                needed = (cost or {}).get("requestedQueryCost")
                state = self._available_now()
                wait = 1.0 if state is None or needed is None else max((float(needed) - state[0]) / state[1], 0.0)
                throttled = self._throttled(throttled, max(wait, 0.05))
                continue
            if "MAX_COST_EXCEEDED" in codes:
                raise QueryTooCostly(_messages(errors))
            if errors:
                raise ExportError(_graphql_problem(errors))
            self._check_search(extensions)
            return Result(body.get("data") or {}, extensions, _server_time(response))

    def _headers(self) -> dict[str, str]:
        return {"X-Shopify-Access-Token": self._token.get_secret_value(), "Content-Type": "application/json",
                "Accept": "application/json"}

    def _retry_or_stop(self, attempt: int, what: str) -> int:
        attempt += 1
        if attempt >= self.max_attempts:
            raise ExportError(
                f"Shopify's Admin API ({self.endpoint}) failed {attempt} times in a row (last: {what}). Nothing of "
                "this night was kept and the sync point did not move: run again later; the next run starts from "
                "the same point.")
        self.stats.retried += 1
        wait = _backoff(attempt - 1, self.retry_base)
        log.warning("shopify: %s; trying again in %.1f s (attempt %d of %d)", what, wait, attempt + 1,
                    self.max_attempts)
        self._sleep(wait)
        return attempt

    def _throttled(self, count: int, wait: float) -> int:
        count += 1
        self.stats.throttled += 1
        if count > self.max_throttled:
            raise ExportError(f"Shopify kept answering THROTTLED ({count} times for one request): the app's API "
                              "budget is used up by something else. Run again later.")
        self.stats.waited_seconds += wait
        self._sleep(wait)
        return count

    def _refused(self, response: httpx.Response) -> ExportError:
        status = response.status_code
        if status in (401, 403):
            return ExportError(
                f"Shopify refused the access token (HTTP {status}) at {self.endpoint}. Check "
                "KIZUNA_SHOPIFY_ACCESS_TOKEN (an Admin API access token of a custom app installed on this shop) "
                f"and that the app has the scopes {', '.join(SCOPES)}.")
        if status == 404:
            return ExportError(
                f"Shopify answered 404 for {self.endpoint}: check KIZUNA_SHOPIFY_SHOP (the shop's "
                f"myshopify.com domain) and KIZUNA_SHOPIFY_API_URL; the API version {queries.API_VERSION} must be "
                "one Shopify still serves.")
        return ExportError(f"Shopify answered HTTP {status} at {self.endpoint}: {response.text[:300]}")

    def _check_search(self, extensions: dict[str, Any]) -> None:
        problems = []
        for entry in extensions.get("search") or []:
            for warning in entry.get("warnings") or []:
                problems.append(f"{warning.get('field') or '?'}: {warning.get('message') or warning}")
        if problems:
            raise ExportError("Shopify could not read the source's search filter (" + "; ".join(problems)
                              + "), so it would have returned records outside the night's window. Nothing was "
                              "loaded; this is a defect of the source: report it with this message.")

    # -- bulk operations --------------------------------------------------------------------

    def run_bulk(self, query: str, *, poll_first: float = 0.2, poll_max: float = 10.0,
                 max_wait: float = 6 * 3600) -> dict[str, Any]:
        """Start a bulk query and poll it until it ends; returns the operation (status, url, errorCode...)."""
        started = self.execute(queries.RUN_BULK, {"query": query}).data["bulkOperationRunQuery"]
        problems = started.get("userErrors") or []
        if problems:
            raise ExportError("Shopify refused the bulk query: " + "; ".join(
                f"{'.'.join(p.get('field') or []) or 'query'}: {p.get('message')}" for p in problems))
        operation = started["bulkOperation"]
        deadline, wait = time.monotonic() + max_wait, poll_first
        while operation.get("status") in ("CREATED", "RUNNING", "CANCELING", None):
            if time.monotonic() > deadline:
                raise ExportError(f"Shopify's bulk operation {operation['id']} did not finish within "
                                  f"{max_wait / 3600:.0f} h; run again later.")
            self._sleep(wait)
            wait = min(wait * 2, poll_max)
            polled = self.execute(queries.BULK_STATUS, {"id": operation["id"]}).data.get("node")
            if polled is None:
                raise ExportError(f"Shopify no longer knows the bulk operation {operation['id']} it started; run "
                                  "again (a new one is started).")
            operation = polled
        return operation

    def download(self, url: str, dest: Path) -> int:
        """Save a bulk operation's result to `dest`, streamed to disk (a full export can be gigabytes),
        from its signed URL and without the access token, which is for the Admin API alone. A broken
        download starts again from the top. Returns the bytes written."""
        attempt = 0
        while True:
            try:
                size = 0
                with self._downloads.stream("GET", url) as response, dest.open("wb") as out:
                    if response.status_code != 200:
                        raise ExportError(f"Shopify's bulk result could not be downloaded (HTTP "
                                          f"{response.status_code}); run again later.")
                    for chunk in response.iter_bytes():
                        out.write(chunk)
                        size += len(chunk)
                return size
            except httpx.TransportError as exc:
                attempt = self._retry_or_stop(attempt, f"bulk result download: {type(exc).__name__}")


def read_lines(path: Path) -> Iterator[bytes]:
    """The non-empty lines of a downloaded JSONL file, one at a time."""
    with path.open("rb") as fh:
        for line in fh:
            if line.strip():
                yield line


def _retry_after(response: httpx.Response) -> float:
    try:
        return max(float(response.headers.get("Retry-After", "1")), 0.05)
    except ValueError:
        return 1.0


def _server_time(response: httpx.Response) -> datetime | None:
    try:
        value = parsedate_to_datetime(response.headers.get("Date", ""))
    except (TypeError, ValueError):
        return None
    return value.astimezone(timezone.utc) if value else None


def _messages(errors: list[Any]) -> str:
    return "; ".join(str(e.get("message") if isinstance(e, dict) else e) for e in errors)


def _graphql_problem(errors: list[Any]) -> str:
    codes = {((e.get("extensions") or {}).get("code")) for e in errors if isinstance(e, dict)}
    text = f"Shopify refused the source's query: {_messages(errors)[:600]}."
    if "ACCESS_DENIED" in codes:
        return text + f" The access token's app needs the scopes {', '.join(SCOPES)}."
    return text + (" The source and Shopify disagree on the API's shape: check that the shop serves API version "
                   f"{queries.API_VERSION}, and report this message.")
