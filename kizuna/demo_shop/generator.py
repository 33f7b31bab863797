"""Generate a synthetic single-product repeat shop as the cart system's nightly CSV exports.

The output is what a real shop sends (see `connectors/sources/export_format.py`): a
full export of the history up to `end_date - nights`, then one folder per night with
the rows created or changed that day. Everything downstream (ingest, marts, gates,
campaigns, benchmarks) is exercised on it, so the data has the shape the analyses in
docs/domain.md look for: a trial offer, subscriptions that churn, media that differ in CPO
and in how their customers repeat, one-time buyers as the largest group.

How it is built, and why:

- Customers are generated in blocks of `CHUNK_CUSTOMERS`, vectorised with numpy, and
  each block's rows are appended to the files before the next block starts: a shop of
  a million customers (about ten million rows) fits in bounded memory.
- Each block draws from its own random stream seeded by (seed, block index), and what
  all blocks share (how acquisitions spread over the days, the media mix, ad-spend
  noise) from one more stream: the files depend on the arguments only. The block size
  is part of the shop's definition; changing it changes the shop (and the version).
- Every row is generated with its history as versions (an order: confirmed, then maybe
  cancelled or returned). The full export holds each key's latest version as of its
  day; a night's folder holds each key's last version of that day. That is what makes
  a cancellation arrive as a new version of an order a later night.
- Times are seconds since 1970-01-01 on the Japanese wall clock (the exports carry no
  offset), so a day is `seconds // 86400`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Union

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from connectors.sources.export_format import (
    CART_STATUSES,
    CHANNELS,
    CONSENT_STATUSES,
    ENCODINGS,
    EXPORT_FILES,
    ORDER_KINDS,
    ORDER_STATUSES,
    SUBSCRIPTION_STATUSES,
    ExportFile,
)
from kizuna.demo_shop import catalog, names
from kizuna.errors import KizunaError

#: Changes whenever the same arguments would give different files.
GENERATOR_VERSION = "1"
#: Customers per block: the unit of randomness and of memory.
CHUNK_CUSTOMERS = 50_000
#: Years of history before the end date, unless `generate_shop(start_date=...)` says where it starts.
HISTORY_YEARS = 3
MAX_CUSTOMERS = 9_999_999  # customer ids have seven digits

DAY = 86_400
HOUR = 3_600
#: Null in integer, date and timestamp arrays.
NULL = np.iinfo(np.int64).min
#: Time of a state a key never reaches (or not by the end date).
NEVER = np.iinfo(np.int64).max

_EPOCH = date(1970, 1, 1)
_CALENDAR_STREAM = 0
_CHUNK_STREAM = 1

# Codes used in the arrays: indexes into the export format's value lists.
_TRIAL, _ONE_OFF, _SUBSCRIPTION = (ORDER_KINDS.index(k) for k in ("trial", "one_off", "subscription"))
_EMAIL, _LINE, _SMS, _DM, _PHONE = (CHANNELS.index(c) for c in ("email", "line", "sms", "dm", "phone"))
_GENDERS = ("female", "male", "unknown")
_CONSENT_SOURCES = ("checkout", "mypage", "line_follow", "phone")
_CHECKOUT, _MYPAGE, _LINE_FOLLOW, _BY_PHONE = range(4)

#: Relative weight of each hour of the day for orders customers place themselves:
#: lunch and late evening peaks, as on Japanese shopping sites.
_SHOPPING_HOURS = np.array(
    [1.0, 0.6, 0.3, 0.2, 0.2, 0.3, 0.6, 1.2, 1.6, 2.0, 2.4, 2.6, 3.0, 2.6, 2.4, 2.3, 2.2, 2.3, 2.5, 2.9, 3.4, 3.8, 3.6, 2.2]
)
_SHOPPING_HOURS = _SHOPPING_HOURS / _SHOPPING_HOURS.sum()
#: Weight of each weekday (Monday first) in acquisitions: Sundays and Mondays sell more.
_WEEKDAYS = np.array([1.08, 1.0, 0.98, 0.97, 0.92, 0.95, 1.10])
#: Area codes for landline numbers (0AB-CDE-FGHI); none of them a mobile or special prefix.
_AREA_CODES = np.array([11, 15, 17, 18, 22, 24, 25, 26, 27, 28, 29, 42, 43, 44, 45, 46, 47, 48, 52, 53, 54, 55,
                        58, 59, 72, 73, 74, 75, 76, 77, 78, 79, 82, 83, 84, 86, 87, 88, 89, 92, 93, 95, 96, 97, 98, 99])


def _labels(values: Sequence[str]) -> pa.Array:
    return pa.array(list(values), pa.string())


# Per-medium behaviour as arrays, indexed by a customer's medium code.
_MEDIA = catalog.MEDIA
_M_TRIAL = np.array([m.trial for m in _MEDIA])
_M_SUBSCRIPTION_FIRST = np.array([m.subscription_first for m in _MEDIA])
_M_CONVERSION = np.array([m.conversion for m in _MEDIA])
_M_REPEAT = np.array([m.repeat for m in _MEDIA])
_M_LOYALTY = np.array([m.loyalty for m in _MEDIA])
_M_CHURN = np.array([m.churn for m in _MEDIA])
_M_MEAN_AGE = np.array([m.mean_age for m in _MEDIA])
_MEDIA_TYPE = np.array([m.media_type for m in _MEDIA])
_M_LINE_BONUS = np.array([{"line_ads": 0.30, "social": 0.05}.get(m.media_type, 0.0) for m in _MEDIA])
_MEDIA_CODES = _labels([m.code for m in _MEDIA])

_PRODUCT_IDS = _labels([p.product_id for p in catalog.PRODUCTS])
_P_TRIAL, _P_MAIN, _P_CROSS_SELL, _P_GIFT = (
    catalog.PRODUCTS.index(p) for p in (catalog.TRIAL, catalog.MAIN, catalog.CROSS_SELL, catalog.GIFT)
)
_COUPON_CODES = _labels([c.code for c in catalog.COUPONS])
_COUPON_PERCENT = np.array([c.percent for c in catalog.COUPONS])
_COUPON_YEN = np.array([c.yen for c in catalog.COUPONS])
(_C_F2, _C_CONVERSION, _C_DEEPER_CONVERSION, _C_SUBSCRIBE_AT_ONCE, _C_WINBACK, _C_SALE) = (
    catalog.COUPONS.index(c) for c in (
        catalog.F2_COUPON, catalog.CONVERSION_COUPON, catalog.DEEPER_CONVERSION_COUPON,
        catalog.SUBSCRIBE_AT_ONCE_COUPON, catalog.WINBACK_COUPON, catalog.SALE_COUPON,
    )
)
_PAYMENTS = _labels([p for p, _ in catalog.PAYMENT_METHODS])
_PAYMENT_WEIGHTS = np.array([w for _, w in catalog.PAYMENT_METHODS])
_COD = [p for p, _ in catalog.PAYMENT_METHODS].index("cod")
_CARRIERS = _labels([c for c, _ in catalog.PARCEL_CARRIERS] + [catalog.LETTER_CARRIER])
_PARCEL_WEIGHTS = np.array([w for _, w in catalog.PARCEL_CARRIERS])

# Names and addresses as arrays to draw from.
_SURNAME_WEIGHTS = np.array([s.weight for s in names.SURNAMES]) / sum(s.weight for s in names.SURNAMES)
_SURNAME = _labels([s.kanji for s in names.SURNAMES])
_SURNAME_KANA = _labels([s.kana for s in names.SURNAMES])
_SURNAME_ROMAJI = _labels([s.romaji for s in names.SURNAMES])
_GIVEN = _labels([g.kanji for g in names.GIVEN_NAMES])
_GIVEN_KANA = _labels([g.kana for g in names.GIVEN_NAMES])
_GIVEN_ROMAJI = _labels([g.romaji for g in names.GIVEN_NAMES])
_GIVEN_BY = {
    (gender, era): np.array([i for i, g in enumerate(names.GIVEN_NAMES) if g.gender == gender and g.era == era])
    for gender in ("female", "male") for era in (0, 1, 2)
}
_CITY_WEIGHTS = np.array([c.weight for c in names.CITIES]) / sum(c.weight for c in names.CITIES)
_CITY = _labels([c.city for c in names.CITIES])
_PREFECTURE = _labels([c.prefecture for c in names.CITIES])
#: One-digit area code of Tokyo (03) and Osaka (06) numbers; 0 elsewhere (0AB-CDE-FGHI).
_BIG_CITY_AREA = np.array([{"東京都": 3, "大阪府": 6}.get(c.prefecture, 0) for c in names.CITIES])
_POSTAL_PREFIX = np.frombuffer("".join(c.postal_prefix for c in names.CITIES).encode(), np.uint8).reshape(-1, 3)
_TOWNS = _labels(names.TOWNS)
_BUILDINGS = _labels(names.BUILDINGS)
_EMAIL_DOMAINS = _labels([d for d, _ in names.EMAIL_DOMAINS])
_EMAIL_DOMAIN_WEIGHTS = np.array([w for _, w in names.EMAIL_DOMAINS])
_MOBILE_PREFIXES = np.frombuffer(b"090080070", np.uint8).reshape(3, 3)
_HEX = np.frombuffer(b"0123456789abcdef", np.uint8)


# ---------------------------------------------------------------------------------------
# Rows with versions, and how an export folder selects from them
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Lookup:
    """A string column given as indexes into a small array of values; index -1 is null.

    Statuses, products, media and references to another table's ids repeat few values
    many times: an index array is cheap to select from, and becomes strings only when
    the selected rows are written.
    """

    index: np.ndarray
    values: pa.Array

    def take(self, rows: np.ndarray) -> Lookup:
        return Lookup(self.index[rows], self.values)

    def to_arrow(self) -> pa.Array:
        return self.values.take(pa.array(self.index, pa.int64(), mask=self.index < 0))


#: A column's values: numbers, dates and times (int64 with NULL), booleans, strings.
Column = Union[np.ndarray, pa.Array, Lookup]


def _take(values: Column, rows: np.ndarray) -> Column:
    if isinstance(values, (Lookup, pa.Array)):
        return values.take(rows)
    return values[rows]


def _to_arrow(values: Column, type_: str) -> pa.Array:
    if isinstance(values, Lookup):
        return values.to_arrow()
    if isinstance(values, pa.Array):
        return values
    if type_ == "boolean":
        return pa.array(values, pa.bool_())
    mask = values == NULL
    arrow_type = {"integer": pa.int64(), "timestamp": pa.timestamp("s"), "date": pa.date32()}[type_]
    if type_ == "date":
        values = np.where(mask, 0, values).astype(np.int32)
    return pa.array(values, arrow_type, mask=mask if mask.any() else None)


@dataclass(frozen=True)
class Rows:
    """One table's rows from one block: every version of every key.

    `key` and `at` (the version's updated_at) have one entry per version, sorted by key
    and then time. `per_key` columns hold one value per key, `per_version` columns one
    value per version (what changes between versions: status, cancelled_at, ...).
    """

    key: np.ndarray
    at: np.ndarray
    per_key: dict[str, Column]
    per_version: dict[str, Column] = field(default_factory=dict)

    def latest(self, day: int, full: bool) -> np.ndarray:
        """The versions an export of `day` holds: each key's last version of that day
        (a night's folder) or of any day up to it (the full export)."""
        version_day = self.at // DAY
        next_day = np.full_like(version_day, NEVER)
        same_key = self.key[1:] == self.key[:-1]
        next_day[:-1][same_key] = version_day[1:][same_key]
        hit = version_day <= day if full else version_day == day
        return np.flatnonzero(hit & (next_day > day))

    def table(self, spec: ExportFile, versions: np.ndarray) -> pa.Table:
        keys = self.key[versions]
        arrays = []
        for column in spec.columns:
            if column.name == "updated_at":
                values: Column = self.at[versions]
            elif column.name in self.per_version:
                values = _take(self.per_version[column.name], versions)
            else:
                values = _take(self.per_key[column.name], keys)
            arrays.append(_to_arrow(values, column.type))
        return pa.Table.from_arrays(arrays, names=spec.column_names)


def _versions(end: int, *states: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Versions of keys from the time each key reached each state (NEVER: it did not).

    State 0 is the key's creation, which every key has reached; later states follow in
    time. A state reached after `end` is not exported yet. Returns key, time and state
    of every version, sorted by key and then state.
    """
    times = np.stack(states)
    times[times > end] = NEVER
    key, state = np.nonzero((times != NEVER).T)
    return key, times[state, key], state


def _single_version(at: np.ndarray, per_key: dict[str, Column]) -> Rows:
    return Rows(np.arange(len(at)), at, per_key)


def _at_state(state: np.ndarray, which: int, values: np.ndarray) -> np.ndarray:
    """A per-version column that is set from the version in `which` state on: the time
    a subscription was cancelled, a parcel delivered, a consent withdrawn."""
    return np.where(state == which, values, NULL)


# ---------------------------------------------------------------------------------------
# Small vectorised helpers
# ---------------------------------------------------------------------------------------


def _rng(seed: int, stream: int, index: int = 0) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(stream, index)))


def _digits(numbers: np.ndarray, width: int) -> np.ndarray:
    """Zero-padded decimal digits of each number as a (n, width) matrix of ASCII bytes."""
    if len(numbers) and int(numbers.max()) >= 10**width:
        raise ValueError(f"number {int(numbers.max())} does not fit in {width} digits")
    powers = 10 ** np.arange(width - 1, -1, -1, dtype=np.int64)
    return ((numbers.astype(np.int64)[:, None] // powers) % 10 + 48).astype(np.uint8)


def _fixed_strings(n: int, *parts: str | np.ndarray) -> pa.Array:
    """Strings of one width from literal parts and (n, k) byte matrices, built directly
    as an Arrow string array: ids, phone numbers and postal codes for millions of rows
    without formatting one string at a time."""
    matrices = [
        np.broadcast_to(np.frombuffer(p.encode(), np.uint8), (n, len(p.encode()))) if isinstance(p, str) else p
        for p in parts
    ]
    data = np.ascontiguousarray(np.concatenate(matrices, axis=1)) if n else np.zeros((0, 0), np.uint8)
    width = data.shape[1]
    offsets = np.arange(0, (n + 1) * width, width or 1, dtype=np.int32)[: n + 1]
    return pa.Array.from_buffers(pa.string(), n, [None, pa.py_buffer(offsets), pa.py_buffer(data.tobytes())])


def _ids(prefix: str, numbers: np.ndarray, width: int) -> pa.Array:
    return _fixed_strings(len(numbers), prefix, _digits(numbers, width))


def _text(numbers: np.ndarray) -> pa.Array:
    return pc.cast(pa.array(numbers, pa.int64()), pa.string())


def _clock(rng: np.random.Generator, n: int) -> np.ndarray:
    """Seconds into the day at which customers shop, following the hourly profile."""
    return rng.choice(24, n, p=_SHOPPING_HOURS) * HOUR + rng.integers(0, HOUR, n)


def _between_hours(rng: np.random.Generator, first: int, last: int, n: int) -> np.ndarray:
    """Seconds into the day, uniform from hour `first` to before hour `last` (work hours)."""
    return rng.integers(first * HOUR, last * HOUR, n)


def _expand(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For items repeated `counts` times: the owner of each repetition and its rank."""
    owner = np.repeat(np.arange(len(counts)), counts)
    starts = np.cumsum(counts) - counts
    return owner, np.arange(len(owner)) - starts[owner]


def _cumsum_by_owner(values: np.ndarray, owner: np.ndarray, rank: np.ndarray) -> np.ndarray:
    """Running sum of `values` within each owner's run (as laid out by `_expand`)."""
    total = np.cumsum(values)
    first = np.flatnonzero(rank == 0)
    base = np.zeros(owner.max() + 1 if len(owner) else 0)
    base[owner[first]] = total[first] - values[first]
    return total - base[owner]


def _days(d: date) -> int:
    return (d - _EPOCH).days


def _date_text(day: int) -> str:
    return (_EPOCH + timedelta(days=int(day))).isoformat()


# ---------------------------------------------------------------------------------------
# What all blocks share
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Calendar:
    """The history's days, how acquisitions spread over them, and the media mix."""

    start_day: int
    end_day: int
    #: Last second of the end date: nothing later exists.
    end: int
    #: Share of all customers acquired by the end of each day of the history.
    acquisition_cdf: np.ndarray
    #: Month of each day (0: the history's first month).
    month_of_day: np.ndarray
    #: First day of each month (the first may lie before the history starts).
    month_starts: np.ndarray
    #: (months, media): cumulative share of each medium among that month's new customers.
    media_cdf: np.ndarray
    #: (media, months): actual spend divided by CPO x new customers.
    spend_noise: np.ndarray


def _history_start(end_date: date) -> date:
    try:
        before = end_date.replace(year=end_date.year - HISTORY_YEARS)
    except ValueError:  # 29 February
        before = end_date.replace(year=end_date.year - HISTORY_YEARS, day=28)
    return before + timedelta(days=1)


def _calendar(seed: int, end_date: date, start_date: date | None = None) -> _Calendar:
    rng = _rng(seed, _CALENDAR_STREAM)
    start_day, end_day = _days(start_date or _history_start(end_date)), _days(end_date)
    days = np.arange(start_day, end_day + 1)
    months = days.astype("datetime64[D]").astype("datetime64[M]")
    month_of_day = (months - months[0]).astype(np.int64)
    n_months = int(month_of_day[-1]) + 1
    month_starts = (months[0] + np.arange(n_months)).astype("datetime64[D]").astype(np.int64)
    progress = (days - start_day) / len(days)

    # New customers more than double over the history, with good and bad months and weekdays.
    month_factor = rng.lognormal(0.0, 0.15, n_months)
    weekday = _WEEKDAYS[(days + 3) % 7]  # 1970-01-01 was a Thursday
    weights = (1.0 + 1.2 * progress) * month_factor[month_of_day] * weekday
    acquisition_cdf = np.cumsum(weights) / weights.sum()

    # The media mix drifts (social and LINE grow, print shrinks) and varies by month.
    month_progress = np.arange(n_months) / n_months
    share = np.array([m.share for m in _MEDIA]) * (1.0 + np.outer(month_progress, [m.trend for m in _MEDIA]))
    share *= rng.lognormal(0.0, 0.12, share.shape)
    media_cdf = np.cumsum(share / share.sum(axis=1, keepdims=True), axis=1)

    spend_noise = rng.lognormal(0.0, 0.08, (len(_MEDIA), n_months))
    return _Calendar(start_day, end_day, (end_day + 1) * DAY - 1, acquisition_cdf, month_of_day,
                     month_starts, media_cdf, spend_noise)


# ---------------------------------------------------------------------------------------
# One block of customers
# ---------------------------------------------------------------------------------------


@dataclass
class _Counters:
    """Running numbers that keep ids unique across blocks."""

    orders: int = 0
    order_lines: int = 0
    subscriptions: int = 0
    carts: int = 0
    surveys: int = 0


@dataclass(frozen=True)
class _People:
    """Per-customer facts of one block that later tables depend on."""

    ids: pa.Array
    first_at: np.ndarray
    registered_at: np.ndarray
    medium: np.ndarray
    age: np.ndarray
    payment: np.ndarray
    has_email: np.ndarray
    mobile: np.ndarray
    follows_line: np.ndarray
    columns: dict[str, Column]


def _acquire(rng: np.random.Generator, cal: _Calendar, first: int, n: int, total: int
             ) -> tuple[np.ndarray, np.ndarray]:
    """First-order time and acquisition medium of customers first .. first+n-1.

    Customer i is acquired at quantile (i + u) / total of the acquisition curve, so
    customer numbers rise with time across blocks, as a cart system's do. u is drawn
    from the middle of the interval only, so that even a small shop acquires someone
    on (almost) every day and each night's export has new customers.
    """
    quantile = (np.arange(first, first + n) + 0.35 + 0.3 * rng.random(n)) / total
    day = cal.start_day + np.minimum(np.searchsorted(cal.acquisition_cdf, quantile), cal.end_day - cal.start_day)
    first_at = np.sort(day * DAY + _clock(rng, n))
    month = cal.month_of_day[first_at // DAY - cal.start_day]
    medium = (rng.random(n)[:, None] > cal.media_cdf[month]).sum(axis=1)
    return first_at, np.minimum(medium, len(_MEDIA) - 1)


def _people(rng: np.random.Generator, cal: _Calendar, first: int, first_at: np.ndarray,
            medium: np.ndarray) -> _People:
    n = len(first_at)
    numbers = np.arange(first + 1, first + n + 1)
    registered_at = first_at - rng.integers(60, 1800, n)

    # Age at the end date, 20-70, older for print and search, younger for social; no
    # one was under 20 when they first ordered.
    mean = (_M_MEAN_AGE[medium] - 20) / 50
    share = rng.beta(mean * 9, (1 - mean) * 9)
    youngest = 20 + np.ceil((cal.end_day - first_at // DAY) / 365.2425).astype(np.int64)
    age = np.clip((20 + 51 * share).astype(np.int64), youngest, 70)
    birth_day = cal.end_day - ((age + rng.uniform(0.01, 0.99, n)) * 365.2425).astype(np.int64)
    birth_year = (birth_day.astype("datetime64[D]").astype("datetime64[Y]").astype(np.int64) + 1970)

    gender = rng.choice(3, n, p=[0.68, 0.29, 0.03])
    name_gender = np.where(gender == 2, rng.integers(0, 2, n), gender)
    era = np.select([birth_year < 1970, birth_year < 1987], [0, 1], 2)
    era = np.clip(era + rng.choice([-1, 0, 1], n, p=[0.1, 0.8, 0.1]), 0, 2)
    given = np.zeros(n, np.int64)
    for (g, e), pool in _GIVEN_BY.items():
        who = np.flatnonzero((name_gender == _GENDERS.index(g)) & (era == e))
        given[who] = pool[rng.integers(0, len(pool), len(who))]
    surname = rng.choice(len(_SURNAME_WEIGHTS), n, p=_SURNAME_WEIGHTS)

    city = rng.choice(len(_CITY_WEIGHTS), n, p=_CITY_WEIGHTS)
    postal = _fixed_strings(n, _POSTAL_PREFIX[city], "-", _digits(rng.integers(0, 10_000, n), 4))
    flat = rng.random(n) < 0.35
    building = pc.binary_join_element_wise(
        " ", _BUILDINGS.take(rng.integers(0, len(_BUILDINGS), n)),
        _text(rng.integers(1, 13, n) * 100 + rng.integers(1, 11, n)), "")
    address = pc.binary_join_element_wise(
        _TOWNS.take(rng.integers(0, len(_TOWNS), n)), _text(rng.integers(1, 6, n)), "丁目",
        _text(rng.integers(1, 31, n)), "-", _text(rng.integers(1, 21, n)),
        pc.if_else(pa.array(flat), building, ""), "")

    # E-mail local parts from the romanised name and a number unique to the customer
    # (n * 7919 mod 10^7 is a permutation), so no two customers share an address.
    given_r, family_r = _GIVEN_ROMAJI.take(given), _SURNAME_ROMAJI.take(surname)
    style = rng.choice(3, n, p=[0.45, 0.30, 0.25])
    local = pc.if_else(
        pa.array(style == 0), pc.binary_join_element_wise(given_r, family_r, "."),
        pc.if_else(pa.array(style == 1), pc.binary_join_element_wise(family_r, given_r, "_"),
                   pc.binary_join_element_wise(pc.utf8_slice_codeunits(given_r, 0, 1), family_r, "")))
    email = pc.binary_join_element_wise(
        local, _text(numbers * 7919 % 10**7), "@",
        _EMAIL_DOMAINS.take(rng.choice(len(_EMAIL_DOMAIN_WEIGHTS), n, p=_EMAIL_DOMAIN_WEIGHTS)), "")
    has_email = rng.random(n) >= np.where(_MEDIA_TYPE[medium] == "print", 0.10, 0.03)
    email = pc.if_else(pa.array(has_email), email, pa.scalar(None, pa.string()))

    mobile = rng.random(n) < 0.93 - 0.004 * (age - 20)
    mobile_number = _fixed_strings(n, _MOBILE_PREFIXES[rng.choice(3, n, p=[0.45, 0.40, 0.15])], "-",
                                   _digits(rng.integers(0, 10_000, n), 4), "-", _digits(rng.integers(0, 10_000, n), 4))
    landline = pc.if_else(
        pa.array(_BIG_CITY_AREA[city] > 0),
        _fixed_strings(n, "0", _digits(_BIG_CITY_AREA[city], 1), "-", _digits(rng.integers(1000, 10_000, n), 4), "-",
                       _digits(rng.integers(0, 10_000, n), 4)),
        _fixed_strings(n, "0", _digits(_AREA_CODES[rng.integers(0, len(_AREA_CODES), n)], 2), "-",
                       _digits(rng.integers(200, 1000, n), 3), "-", _digits(rng.integers(0, 10_000, n), 4)))
    phone = pc.if_else(pa.array(mobile), mobile_number, landline)
    phone = pc.if_else(pa.array(rng.random(n) < 0.02), pa.scalar(None, pa.string()), phone)

    # LINE followers: ~40% overall, more among the young and those a LINE ad brought.
    follows_line = rng.random(n) < np.clip(0.62 - 0.008 * (age - 20) + _M_LINE_BONUS[medium], 0.05, 0.95)
    followers = np.flatnonzero(follows_line)
    raw = rng.integers(0, 256, (len(followers), 16), dtype=np.uint8)
    hex_digits = np.empty((len(followers), 32), np.uint8)
    hex_digits[:, 0::2], hex_digits[:, 1::2] = _HEX[raw >> 4], _HEX[raw & 15]
    line_index = np.full(n, -1)
    line_index[followers] = np.arange(len(followers))

    older = age >= 60
    payment_weights = np.where(older[:, None], _PAYMENT_WEIGHTS * [0.8, 2.2, 1.0, 0.6, 0.5], _PAYMENT_WEIGHTS)
    payment_weights = np.cumsum(payment_weights / payment_weights.sum(axis=1, keepdims=True), axis=1)
    payment = np.minimum((rng.random(n)[:, None] > payment_weights).sum(axis=1), len(_PAYMENT_WEIGHTS) - 1)

    ids = _ids("C", numbers, 7)
    columns: dict[str, Column] = {
        "customer_id": ids,
        "last_name": _SURNAME.take(surname),
        "first_name": _GIVEN.take(given),
        "last_name_kana": _SURNAME_KANA.take(surname),
        "first_name_kana": _GIVEN_KANA.take(given),
        "gender": Lookup(gender, _labels(_GENDERS)),
        "birth_date": np.where(rng.random(n) < 0.12, NULL, birth_day),
        "email": email,
        "phone": phone,
        "postal_code": postal,
        "prefecture": _PREFECTURE.take(city),
        "city": _CITY.take(city),
        "address_line": address,
        "line_user_id": Lookup(line_index, _fixed_strings(len(followers), "U", hex_digits)),
        "registered_at": registered_at,
    }
    return _People(ids, first_at, registered_at, medium, age, payment, has_email, mobile, follows_line, columns)


# ---------------------------------------------------------------------------------------
# Orders, subscriptions and everything that hangs off them
# ---------------------------------------------------------------------------------------


def _choice_cdf(rng: np.random.Generator, n: int, weights: Sequence[float]) -> np.ndarray:
    p = np.asarray(weights, float)
    return rng.choice(len(p), n, p=p / p.sum())


def _day_start(at: np.ndarray) -> np.ndarray:
    return at // DAY * DAY


@dataclass(frozen=True)
class _Subs:
    """The block's subscriptions and their deliveries."""

    customer: np.ndarray
    started_at: np.ndarray
    interval: np.ndarray
    coupon: np.ndarray
    ended_at: np.ndarray
    paused: np.ndarray
    reason: np.ndarray
    #: Deliveries: subscription index, delivery number (1-based), time of the order.
    d_sub: np.ndarray
    d_number: np.ndarray
    d_at: np.ndarray


def _subscriptions(rng: np.random.Generator, cal: _Calendar, p: _People, first_kind: np.ndarray
                   ) -> tuple[_Subs, np.ndarray]:
    """Who subscribes (at once, or converting after a trial), how long they stay.

    Returns the subscriptions and, per customer, whether they ever subscribed.
    """
    n = len(p.first_at)
    m = p.medium
    at_once = first_kind == _SUBSCRIPTION
    converts = (first_kind == _TRIAL) & (rng.random(n) < _M_CONVERSION[m])
    touches = np.array(catalog.CONVERSION_TOUCH_DAYS)
    touch = touches[rng.choice(len(touches), n, p=np.linspace(2.0, 0.6, len(touches)) / np.linspace(2.0, 0.6, len(touches)).sum())]
    converted_at = _day_start(p.first_at) + (touch + rng.integers(0, 2, n)) * DAY + _clock(rng, n)
    started_at = np.where(at_once, p.first_at, converted_at)
    subscribed = (at_once | converts) & (started_at <= cal.end)
    customer = np.flatnonzero(subscribed)
    k = len(customer)
    started_at = started_at[customer]
    coupon = np.where(at_once[customer], _C_SUBSCRIBE_AT_ONCE,
                      np.where(touch[customer] >= catalog.DEEPER_OFFER_FROM_DAY, _C_DEEPER_CONVERSION, _C_CONVERSION))
    interval = np.array([30, 45, 60])[rng.choice(3, k, p=[0.72, 0.18, 0.10])]

    # Cancellation hazard after each delivery: high for the first three, low later;
    # each subscriber has a personal frailty around their medium's churn.
    frailty = rng.lognormal(-0.12, 0.5, k)
    base = _M_CHURN[m[customer]] * frailty
    deliveries = np.ones(k, np.int64)
    alive = np.ones(k, bool)
    # Enough deliveries for the whole history (a longer one than the default three years needs more).
    years = max(HISTORY_YEARS, -(-(cal.end_day - cal.start_day + 1) // 366))
    max_deliveries = years * 366 // 30 + 2
    for number in range(1, max_deliveries):
        hazard = np.clip(base * (1.25 if number <= 3 else 0.35), 0.0, 0.95)
        alive &= rng.random(k) >= hazard
        deliveries += alive
    last_planned = _day_start(started_at) + (deliveries - 1) * interval * DAY
    ended_at = np.where(
        deliveries >= max_deliveries, NEVER,
        last_planned + rng.integers(3, 1 + np.maximum(interval - 8, 4)) * DAY + _clock(rng, k))
    ended_at = np.where(ended_at > cal.end, NEVER, ended_at)
    paused = rng.random(k) < 0.08
    reason = _choice_cdf(rng, k, [0.30, 0.34, 0.22, 0.14])

    d_sub, rank = _expand(deliveries)
    d_number = rank + 1
    d_at = np.where(rank == 0, started_at[d_sub],
                    _day_start(started_at[d_sub]) + rank * interval[d_sub] * DAY + _between_hours(rng, 2, 6, len(d_sub)))
    keep = d_at <= np.minimum(cal.end, ended_at[d_sub])
    subs = _Subs(customer, started_at, interval, coupon, ended_at, paused, reason,
                 d_sub[keep], d_number[keep], d_at[keep])
    return subs, subscribed


def _repeats(rng: np.random.Generator, cal: _Calendar, p: _People, subscribed: np.ndarray
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One-off purchases after the first by customers who never subscribed.

    Returns customer, time, rank among the customer's repeats (0: the second purchase,
    F2) and days since the customer's previous purchase.
    """
    n = len(p.first_at)
    m = p.medium
    taste = rng.lognormal(-0.1, 0.45, n)
    second = (~subscribed) & (rng.random(n) < np.clip(_M_REPEAT[m] * taste, 0, 0.9))
    loyalty = np.clip(_M_LOYALTY[m] * np.sqrt(taste), 0.05, 0.9)
    more = np.minimum(rng.geometric(1 - loyalty) - 1, 24)
    counts = np.where(second, 1 + more, 0)
    owner, rank = _expand(counts)
    r = len(owner)
    gap = np.where(rank == 0, rng.lognormal(np.log(38), 0.55, r), rng.lognormal(np.log(55), 0.5, r))
    dormant = rng.random(r) < 0.07
    gap = np.where(dormant, rng.uniform(180, 520, r), gap)
    gap_days = np.maximum(gap.astype(np.int64), 3)
    day = p.first_at[owner] // DAY + _cumsum_by_owner(gap_days.astype(float), owner, rank).astype(np.int64)
    at = day * DAY + _clock(rng, r)
    keep = at <= cal.end
    return owner[keep], at[keep], rank[keep], gap_days[keep]


@dataclass
class _Block:
    tables: dict[str, Rows]
    #: New customers per medium and day of the history.
    acquisitions: np.ndarray


def _block(seed: int, cal: _Calendar, index: int, first: int, n: int, total: int, counters: _Counters) -> _Block:
    rng = _rng(seed, _CHUNK_STREAM, index)
    first_at, medium = _acquire(rng, cal, first, n, total)
    p = _people(rng, cal, first, first_at, medium)
    end = cal.end

    r = rng.random(n)
    first_kind = np.where(r < _M_TRIAL[medium], _TRIAL,
                          np.where(r < _M_TRIAL[medium] + _M_SUBSCRIPTION_FIRST[medium], _SUBSCRIPTION, _ONE_OFF))
    subs, subscribed = _subscriptions(rng, cal, p, first_kind)
    rep_owner, rep_at, rep_rank, rep_gap = _repeats(rng, cal, p, subscribed)

    # ---- orders: first orders (trial or one-off), subscription deliveries, repeats
    firsts = np.flatnonzero(first_kind != _SUBSCRIPTION)
    nd, nr = len(subs.d_sub), len(rep_owner)
    o_customer = np.concatenate([firsts, subs.customer[subs.d_sub], rep_owner])
    o_at = np.concatenate([first_at[firsts], subs.d_at, rep_at])
    o_kind = np.concatenate([first_kind[firsts], np.full(nd, _SUBSCRIPTION), np.full(nr, _ONE_OFF)])
    o_sub = np.concatenate([np.full(len(firsts), -1), subs.d_sub, np.full(nr, -1)])
    o_number = np.concatenate([np.full(len(firsts), NULL), subs.d_number, np.full(nr, NULL)])
    first_order = np.concatenate([np.ones(len(firsts), bool),
                                  (subs.d_number == 1) & (first_kind[subs.customer[subs.d_sub]] == _SUBSCRIPTION),
                                  np.zeros(nr, bool)])
    coupon = np.concatenate([
        np.where(rng.random(len(firsts)) < 0.04, _C_SALE, -1),
        np.where(subs.d_number == 1, subs.coupon[subs.d_sub], -1),
        np.select([(rep_gap >= 180) & (rng.random(nr) < 0.65), (rep_rank == 0) & (rng.random(nr) < 0.45),
                   rng.random(nr) < 0.07], [_C_WINBACK, _C_F2, _C_SALE], -1),
    ])
    order = np.argsort(o_at, kind="stable")
    o_customer, o_at, o_kind, o_sub, o_number, first_order, coupon = (
        a[order] for a in (o_customer, o_at, o_kind, o_sub, o_number, first_order, coupon))
    no = len(o_at)
    o_numbers = counters.orders + 1 + np.arange(no)
    counters.orders += no
    order_ids = _ids("O", o_numbers, 9)

    # ---- order lines: the main line, and a cross-sell or the mystery gift
    quantity = np.where(o_kind == _ONE_OFF, 1 + rng.choice(3, no, p=[0.76, 0.19, 0.05]),
                        np.where(o_kind == _SUBSCRIPTION, 1 + (rng.random(no) < 0.08), 1))
    product = np.where(o_kind == _TRIAL, _P_TRIAL, _P_MAIN)
    price = np.select([o_kind == _TRIAL, o_kind == _SUBSCRIPTION],
                      [catalog.TRIAL.list_price, catalog.SUBSCRIPTION_PRICE], catalog.MAIN.list_price)
    cross = (o_kind == _ONE_OFF) & (rng.random(no) < 0.13)
    gift = (o_kind == _SUBSCRIPTION) & (o_number == catalog.GIFT_DELIVERY)
    second = cross | gift
    subtotal = quantity * price + np.where(cross, catalog.CROSS_SELL.list_price, 0)
    percent = np.where(coupon >= 0, _COUPON_PERCENT[coupon], 0)
    yen = np.where(coupon >= 0, _COUPON_YEN[coupon], 0)
    discount = np.minimum(subtotal * percent // 100 + yen, subtotal)
    shipping = np.where((o_kind == _ONE_OFF) & (subtotal < catalog.FREE_SHIPPING_FROM), catalog.SHIPPING_FEE, 0)
    total = subtotal - discount + shipping

    line_order = np.concatenate([np.arange(no), np.flatnonzero(second)])
    line_kind = np.concatenate([np.zeros(no, np.int64), np.ones(int(second.sum()), np.int64)])
    line_sort = np.lexsort((line_kind, line_order))
    line_order, line_kind = line_order[line_sort], line_kind[line_sort]
    second_product = np.where(cross, _P_CROSS_SELL, _P_GIFT)[line_order]
    second_price = np.where(cross, catalog.CROSS_SELL.list_price, 0)[line_order]
    l_product = np.where(line_kind == 0, product[line_order], second_product)
    l_quantity = np.where(line_kind == 0, quantity[line_order], 1)
    l_price = np.where(line_kind == 0, price[line_order], second_price)
    nl = len(line_order)
    l_numbers = counters.order_lines + 1 + np.arange(nl)
    counters.order_lines += nl

    # ---- statuses: a few orders cancelled before shipping, a few returned after delivery
    shipped_at = (_day_start(o_at) + (1 + (rng.random(no) < 0.25)) * DAY
                  + np.maximum(_between_hours(rng, 10, 18, no), o_at % DAY + HOUR - DAY))
    delivered_at = _day_start(shipped_at) + rng.choice([1, 2, 3], no, p=[0.55, 0.35, 0.10]) * DAY \
        + _between_hours(rng, 9, 21, no)
    fate = rng.random(no)
    cancel_p = np.where(p.payment[o_customer] == _COD, 0.045, 0.02)
    cancelled = fate < cancel_p
    returned = (~cancelled) & (fate > 0.988)
    cancelled_at = np.where(cancelled, o_at + rng.integers(600, 8 * HOUR, no), NEVER)
    cancelled_at = np.minimum(cancelled_at, np.where(cancelled, shipped_at - 60, NEVER))
    returned_at = np.where(returned, delivered_at + rng.integers(2, 15, no) * DAY + rng.integers(0, 8 * HOUR, no), NEVER)
    o_key, o_vat, o_state = _versions(end, o_at, cancelled_at, returned_at)

    tables: dict[str, Rows] = {}
    sub_ids = _ids("T", counters.subscriptions + 1 + np.arange(len(subs.customer)), 8)
    counters.subscriptions += len(subs.customer)
    tables["orders"] = Rows(o_key, o_vat, {
        "order_id": order_ids,
        "customer_id": Lookup(o_customer, p.ids),
        "ordered_at": o_at,
        "order_kind": Lookup(o_kind, _labels(ORDER_KINDS)),
        "subscription_id": Lookup(o_sub, sub_ids),
        "delivery_number": o_number,
        "media_code": Lookup(np.where(first_order, medium[o_customer], -1), _MEDIA_CODES),
        "coupon_code": Lookup(coupon, _COUPON_CODES),
        "subtotal": subtotal,
        "discount": discount,
        "shipping_fee": shipping,
        "total": total,
        "payment_method": Lookup(p.payment[o_customer], _PAYMENTS),
    }, {"status": Lookup(o_state, _labels(ORDER_STATUSES))})

    tables["order_lines"] = _single_version(o_at[line_order], {
        "order_line_id": _ids("L", l_numbers, 10),
        "order_id": Lookup(line_order, order_ids),
        "product_id": Lookup(l_product, _PRODUCT_IDS),
        "quantity": l_quantity,
        "unit_price": l_price,
        "line_amount": l_quantity * l_price,
    })

    # ---- subscriptions
    s_key, s_at, s_state = _versions(end, subs.started_at, subs.ended_at)
    ended = s_state == 1
    s_status = np.where(ended, np.where(subs.paused[s_key], SUBSCRIPTION_STATUSES.index("paused"),
                                        SUBSCRIPTION_STATUSES.index("cancelled")),
                        SUBSCRIPTION_STATUSES.index("active"))
    really_cancelled = ended & ~subs.paused[s_key]
    tables["subscriptions"] = Rows(s_key, s_at, {
        "subscription_id": sub_ids,
        "customer_id": Lookup(subs.customer, p.ids),
        "product_id": Lookup(np.full(len(subs.customer), _P_MAIN), _PRODUCT_IDS),
        "started_at": subs.started_at,
        "interval_days": subs.interval,
    }, {
        "status": Lookup(s_status, _labels(SUBSCRIPTION_STATUSES)),
        "cancelled_at": np.where(really_cancelled, s_at, NULL),
        "cancel_reason": Lookup(np.where(really_cancelled, subs.reason[s_key], -1), _labels(catalog.CANCEL_REASONS)),
    })

    # ---- shipments: one per order not cancelled, shipped then delivered
    shipped = np.flatnonzero(~cancelled)
    sh_key, sh_at, sh_state = _versions(end, shipped_at[shipped], delivered_at[shipped])
    ns = len(shipped)
    letter = o_kind[shipped] == _TRIAL
    carrier = np.where(letter, len(catalog.PARCEL_CARRIERS), _choice_cdf(rng, ns, _PARCEL_WEIGHTS))
    tracking = _fixed_strings(ns, _digits(rng.integers(10**11, 10**12 - 1, ns), 12))
    tables["shipments"] = Rows(sh_key, sh_at, {
        "shipment_id": _ids("S", o_numbers[shipped], 9),
        "order_id": Lookup(shipped, order_ids),
        "shipped_at": shipped_at[shipped],
        "carrier": Lookup(carrier, _CARRIERS),
        "tracking_number": tracking,
    }, {"delivered_at": _at_state(sh_state, 1, delivered_at[shipped][sh_key])})

    # ---- customers: a very few ask to be erased, some time after their last purchase
    last_order = np.full(n, 0, np.int64)
    np.maximum.at(last_order, o_customer, o_at)
    last_order = np.maximum(last_order, first_at)
    erased = rng.random(n) < 0.004
    deleted_at = np.where(erased & ~np.isin(np.arange(n), subs.customer[subs.ended_at == NEVER]),
                          last_order + rng.integers(20, 400, n) * DAY + _between_hours(rng, 9, 20, n), NEVER)
    deleted_at = np.where(deleted_at > end, NEVER, deleted_at)
    cu_key, cu_at, cu_state = _versions(end, p.registered_at, deleted_at)
    tables["customers"] = Rows(cu_key, cu_at, p.columns, {"deleted_at": _at_state(cu_state, 1, cu_at)})

    # ---- carts: web orders converted from a cart, and carts left behind
    web = np.flatnonzero((o_kind != _SUBSCRIPTION) & (rng.random(no) < 0.55))
    conv_created = np.maximum(o_at[web] - rng.integers(90, 2 * HOUR, len(web)), p.registered_at[o_customer[web]] + 30)
    n_abandoned = rng.poisson(0.25 + 0.6 * (p.age < 45) + 0.4 * subscribed, n)
    lifetime_days = np.maximum((end - first_at) // DAY, 1)
    ab_owner, _ = _expand(n_abandoned)
    ab_created = first_at[ab_owner] + (rng.random(len(ab_owner)) * np.minimum(lifetime_days[ab_owner], 540)).astype(
        np.int64) * DAY + rng.integers(-3 * HOUR, 3 * HOUR, len(ab_owner))
    ab_created = np.maximum(ab_created, p.registered_at[ab_owner] + 30)
    ab_left = ab_created + rng.integers(3 * HOUR, 24 * HOUR, len(ab_owner))
    alive = ab_left < deleted_at[ab_owner]  # an erased customer leaves no carts behind
    ab_owner, ab_created, ab_left = ab_owner[alive], ab_created[alive], ab_left[alive]
    c_created = np.concatenate([conv_created, ab_created])
    c_customer = np.concatenate([o_customer[web], ab_owner])
    c_order = np.concatenate([web, np.full(len(ab_owner), -1)])
    c_done = np.concatenate([o_at[web], ab_left])
    c_final = np.concatenate([np.full(len(web), CART_STATUSES.index("converted")),
                              np.full(len(ab_owner), CART_STATUSES.index("abandoned"))])
    ab_qty = 1 + (rng.random(len(ab_owner)) < 0.2)
    ab_product = np.where(rng.random(len(ab_owner)) < 0.12, _P_CROSS_SELL, _P_MAIN)
    c_product = np.concatenate([product[web], ab_product])
    c_qty = np.concatenate([quantity[web], ab_qty])
    c_amount = np.concatenate([subtotal[web], ab_qty * np.array([p_.list_price for p_ in catalog.PRODUCTS])[ab_product]])
    c_sort = np.argsort(c_created, kind="stable")
    c_created, c_customer, c_order, c_done, c_final, c_product, c_qty, c_amount = (
        a[c_sort] for a in (c_created, c_customer, c_order, c_done, c_final, c_product, c_qty, c_amount))
    nc = len(c_created)
    c_ids = _ids("K", counters.carts + 1 + np.arange(nc), 9)
    counters.carts += nc
    c_key, c_at, c_state = _versions(end, c_created, c_done)
    tables["carts"] = Rows(c_key, c_at, {
        "cart_id": c_ids,
        "customer_id": Lookup(c_customer, p.ids),
        "created_at": c_created,
        "product_id": Lookup(c_product, _PRODUCT_IDS),
        "quantity": c_qty,
        "amount": c_amount,
    }, {
        "status": Lookup(np.where(c_state == 1, c_final[c_key], CART_STATUSES.index("open")), _labels(CART_STATUSES)),
        "order_id": Lookup(np.where(c_state == 1, c_order[c_key], -1), order_ids),
    })

    # ---- consents per channel: e-mail at checkout, LINE on following, DM for many
    older = np.clip((p.age - 20) / 50, 0, 1)
    wants = np.stack([
        p.has_email & (rng.random(n) < 0.86),
        p.follows_line,
        p.mobile & (rng.random(n) < 0.12),
        rng.random(n) < 0.45 + 0.35 * older,
        rng.random(n) < 0.04 + 0.12 * older,
    ], axis=1)  # columns in CHANNELS order
    channel_of = np.array([_EMAIL, _LINE, _SMS, _DM, _PHONE])
    source_of = np.array([_CHECKOUT, _LINE_FOLLOW, _CHECKOUT, _CHECKOUT, _BY_PHONE])
    cs_customer, cs_column = np.nonzero(wants)
    ncs = len(cs_customer)
    cs_channel = channel_of[cs_column]
    cs_source = source_of[cs_column]
    later = rng.random(ncs) < 0.18
    cs_source = np.where(later & (cs_column != 1) & (cs_column != 4), _MYPAGE, cs_source)
    cs_given = np.where(cs_column == 1, _later(rng, p.registered_at[cs_customer], 0, 20),
                        np.where(later, _later(rng, p.registered_at[cs_customer], 1, 200),
                                 p.registered_at[cs_customer] + 1))
    cs_withdrawn = np.where(rng.random(ncs) < np.select([cs_column == 0, cs_column == 1], [0.14, 0.10], 0.06),
                            cs_given + (rng.exponential(220, ncs) * DAY).astype(np.int64) + HOUR, NEVER)
    cs_withdrawn = np.where(deleted_at[cs_customer] != NEVER, np.minimum(cs_withdrawn, deleted_at[cs_customer]),
                            cs_withdrawn)
    cs_withdrawn = np.maximum(cs_withdrawn, cs_given + 60)
    cs_withdrawn = np.where(cs_withdrawn > end, NEVER, cs_withdrawn)
    k_key, k_at, k_state = _versions(end, cs_given, cs_withdrawn)
    tables["consents"] = Rows(k_key, k_at, {
        "customer_id": Lookup(cs_customer, p.ids),
        "channel": Lookup(cs_channel, _labels(CHANNELS)),
        "consented_at": cs_given,
        "source": Lookup(cs_source, _labels(_CONSENT_SOURCES)),
    }, {
        "status": Lookup(k_state, _labels(CONSENT_STATUSES)),
        "withdrawn_at": _at_state(k_state, 1, k_at),
    })

    # ---- survey: some answer ~2-3 weeks after the first order; those who come back
    # (or stay subscribed) were the satisfied ones
    orders_per_customer = np.bincount(o_customer, minlength=n)
    answers = rng.random(n) < np.where(p.has_email, 0.09, 0.03)
    sv_customer = np.flatnonzero(answers)
    sv_at = first_at[sv_customer] + rng.integers(10, 25, len(sv_customer)) * DAY + _clock(rng, len(sv_customer)) \
        - first_at[sv_customer] % DAY
    keep = (sv_at <= end) & (sv_at < deleted_at[sv_customer])
    sv_customer, sv_at = sv_customer[keep], sv_at[keep]
    nsv = len(sv_customer)
    repeater = (orders_per_customer[sv_customer] >= 2).astype(float)
    satisfaction = np.clip(np.rint(rng.normal(2.9 + 1.1 * repeater, 0.9)), 1, 5).astype(np.int64)
    intention = np.clip(np.rint(0.6 * satisfaction + rng.normal(0.6 + 1.0 * repeater, 0.8)), 1, 5).astype(np.int64)
    band = np.select([satisfaction <= 2, satisfaction == 3], [0, 1], 2)
    comments = [c for group in catalog.SURVEY_COMMENTS for c in group]
    comment = np.where(rng.random(nsv) < 0.4, band * 5 + rng.integers(0, 5, nsv), -1)
    s_order = np.argsort(sv_at, kind="stable")
    sv_customer, sv_at, satisfaction, intention, comment = (
        a[s_order] for a in (sv_customer, sv_at, satisfaction, intention, comment))
    tables["survey_responses"] = _single_version(sv_at, {
        "response_id": _ids("R", counters.surveys + 1 + np.arange(nsv), 8),
        "customer_id": Lookup(sv_customer, p.ids),
        "answered_at": sv_at,
        "satisfaction": satisfaction,
        "intention_to_continue": intention,
        "comment": Lookup(comment, _labels(comments)),
    })
    counters.surveys += nsv

    acquisitions = np.zeros((len(_MEDIA), cal.end_day - cal.start_day + 1), np.int64)
    np.add.at(acquisitions, (medium, first_at // DAY - cal.start_day), 1)
    return _Block(tables, acquisitions)


def _later(rng: np.random.Generator, at: np.ndarray, low_days: int, high_days: int) -> np.ndarray:
    """A time `low_days` to `high_days` days after `at`, at a shopping hour."""
    return _day_start(at) + rng.integers(low_days, high_days + 1, len(at)) * DAY + np.maximum(
        _clock(rng, len(at)), at % DAY + 60)


# ---------------------------------------------------------------------------------------
# Tables all blocks share
# ---------------------------------------------------------------------------------------


def _products(cal: _Calendar) -> Rows:
    at = np.full(len(catalog.PRODUCTS), (cal.start_day - 45) * DAY + 10 * HOUR)
    return _single_version(at, {
        "product_id": _PRODUCT_IDS,
        "sku": _labels([p.sku for p in catalog.PRODUCTS]),
        "product_name": _labels([p.name for p in catalog.PRODUCTS]),
        "product_type": _labels([p.product_type for p in catalog.PRODUCTS]),
        "list_price": np.array([p.list_price for p in catalog.PRODUCTS]),
        "unit_cost": np.array([p.unit_cost for p in catalog.PRODUCTS]),
        "is_subscription_eligible": np.array([p.subscription_eligible for p in catalog.PRODUCTS]),
        # the main products' supply per unit (the run-out anchor); empty for the trial pack and the gift
        "days_per_unit": np.array([p.days_per_unit or NULL for p in catalog.PRODUCTS], dtype=np.int64),
    })


def _media(cal: _Calendar) -> Rows:
    at = np.full(len(_MEDIA), (cal.start_day - 30) * DAY + 11 * HOUR)
    return _single_version(at, {
        "media_code": _MEDIA_CODES,
        "media_name": _labels([m.name for m in _MEDIA]),
        "media_type": _labels(list(_MEDIA_TYPE)),
    })


def _ad_spend(cal: _Calendar, acquisitions: np.ndarray) -> Rows:
    """Month-to-date spend of every paid medium, booked each morning for the day before:
    CPO x new customers x the month's noise. A month's row has a version per day."""
    paid = np.flatnonzero(np.array([m.cpo for m in _MEDIA]) > 0)
    n_days = acquisitions.shape[1]
    month = cal.month_of_day
    n_months = int(month[-1]) + 1
    keys, ats, amounts = [], [], []
    day_index = np.arange(n_days)
    for key_base, m in enumerate(paid):
        cost = _MEDIA[m].cpo * acquisitions[m] * cal.spend_noise[m, month]
        month_to_date = np.cumsum(cost) - np.concatenate([[0.0], np.cumsum(cost)])[np.searchsorted(month, month)]
        keys.append(key_base * n_months + month)
        ats.append((cal.start_day + day_index + 1) * DAY + 9 * HOUR + 60 * key_base)
        amounts.append(np.rint(month_to_date).astype(np.int64))
    key, at, amount = np.concatenate(keys), np.concatenate(ats), np.concatenate(amounts)
    keep = at <= cal.end
    key, at, amount = key[keep], at[keep], amount[keep]
    order = np.lexsort((at, key))
    key, at, amount = key[order], at[order], amount[order]
    # Keys are numbered over all (medium, month) pairs; renumber the ones that exist.
    present, key = np.unique(key, return_inverse=True)
    medium_of = paid[present // n_months]
    return Rows(key, at, {
        "media_code": Lookup(medium_of, _MEDIA_CODES),
        "spend_month": cal.month_starts[present % n_months],
    }, {"amount": amount})


# ---------------------------------------------------------------------------------------
# Writing the folders
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ShopSummary:
    """What `generate_shop` wrote."""

    out_dir: Path
    customers: int
    seed: int
    end_date: date
    nights: int
    encoding: str
    folders: tuple[str, ...]
    #: Rows written per table, over all folders (a key changed on a night counts again).
    rows: dict[str, int]
    seconds: float
    #: First day of the history when it was chosen (None: HISTORY_YEARS before the end date).
    start_date: date | None = None

    def __str__(self) -> str:
        width = max(len(t) for t in self.rows)
        lines = [
            f"Demo shop in {self.out_dir}: {self.customers:,} customers, seed {self.seed}, "
            f"{self.encoding}, generated in {self.seconds:.1f} s",
            f"Folders: {self.folders[0]} (full history) + {self.nights} nights"
            + (f" ({self.folders[1]} .. {self.folders[-1]})" if self.nights else ""),
        ]
        lines += [f"  {table:<{width}}  {count:>12,} rows" for table, count in self.rows.items()]
        return "\n".join(lines)


class _Writer:
    """One CSV file per table and folder, created with its header; blocks append their
    rows (files are opened per write, so any number of nights stays within the limit
    of open files)."""

    def __init__(self, folders: list[Path], encoding: str) -> None:
        self.encoding = encoding
        self.paths: dict[tuple[int, str], Path] = {}
        self.rows = {spec.table: 0 for spec in EXPORT_FILES}
        for i, folder in enumerate(folders):
            folder.mkdir(parents=True, exist_ok=True)
            for spec in EXPORT_FILES:
                path = folder / spec.file_name
                path.write_bytes((",".join(spec.column_names) + "\n").encode(encoding))
                self.paths[i, spec.table] = path

    def write(self, folder: int, spec: ExportFile, table: pa.Table) -> None:
        if not table.num_rows:
            return
        buffer = pa.BufferOutputStream()
        pacsv.write_csv(table, buffer, pacsv.WriteOptions(include_header=False, batch_size=65_536))
        data = buffer.getvalue().to_pybytes()
        if self.encoding != "utf-8":
            data = data.decode("utf-8").encode(self.encoding)
        with open(self.paths[folder, spec.table], "ab") as f:
            f.write(data)
        self.rows[spec.table] += table.num_rows


def _write(writer: _Writer, exports: list[tuple[int, bool]], tables: dict[str, Rows]) -> None:
    for spec in EXPORT_FILES:
        rows = tables.get(spec.table)
        if rows is None:
            continue
        for i, (day, full) in enumerate(exports):
            versions = rows.latest(day, full)
            if len(versions):
                writer.write(i, spec, rows.table(spec, versions))


def generate_shop(out_dir: Path, customers: int, seed: int, end_date: date, nights: int,
                  encoding: str = "utf-8", progress: Callable[[str, float], None] | None = None,
                  start_date: date | None = None) -> ShopSummary:
    """Write a demo shop's exports: the full history up to `end_date - nights`, then one
    folder per night up to `end_date`, then `shop.json` (written last: it marks the shop
    complete). The same arguments always give byte-identical files.

    The history starts `HISTORY_YEARS` before `end_date`, or on `start_date` when given (e.g.
    1997-01-01 for a shop of the 1990s, or ten years back for a long one): customers are
    acquired from that day on."""
    started = time.perf_counter()
    if not 1 <= customers <= MAX_CUSTOMERS:
        raise KizunaError(f"customers must be between 1 and {MAX_CUSTOMERS:,}, not {customers:,}")
    if encoding not in ENCODINGS:
        raise KizunaError(f"encoding must be one of {', '.join(ENCODINGS)}, not {encoding!r}")
    if not 0 <= nights < 365:
        raise KizunaError(f"nights must be between 0 and 364, not {nights}")
    if start_date is not None and not start_date < end_date - timedelta(days=nights):
        raise KizunaError(f"start_date ({start_date}) must be before the full history's night "
                          f"({end_date - timedelta(days=nights)}: end_date - nights)")
    out_dir = Path(out_dir)
    cal = _calendar(seed, end_date, start_date)
    first_day = cal.end_day - nights
    exports = [(first_day, True)] + [(first_day + i, False) for i in range(1, nights + 1)]
    folder_names = [_date_text(day) for day, _ in exports]
    # Folders of another shop (other end date or nights) would read as extra nights.
    stale = sorted(p.name for p in out_dir.glob("????-??-??") if p.is_dir() and p.name not in folder_names) \
        if out_dir.is_dir() else []
    if stale:
        raise KizunaError(f"{out_dir} already holds export folders of another shop ({', '.join(stale[:3])}"
                          f"{', ...' if len(stale) > 3 else ''}): empty it or choose another folder")
    out_dir.mkdir(parents=True, exist_ok=True)
    marker = out_dir / "shop.json"
    marker.unlink(missing_ok=True)
    counters = _Counters()
    acquisitions = np.zeros((len(_MEDIA), cal.end_day - cal.start_day + 1), np.int64)
    n_blocks = -(-customers // CHUNK_CUSTOMERS)
    writer = _Writer([out_dir / name for name in folder_names], encoding)
    _write(writer, exports, {"products": _products(cal), "media": _media(cal)})
    for index in range(n_blocks):
        first = index * CHUNK_CUSTOMERS
        n = min(CHUNK_CUSTOMERS, customers - first)
        block = _block(seed, cal, index, first, n, customers, counters)
        _write(writer, exports, block.tables)
        acquisitions += block.acquisitions
        del block
        if progress:
            progress(f"customers {first + n:,} of {customers:,}", (index + 1) / (n_blocks + 1))
    _write(writer, exports, {"ad_spend": _ad_spend(cal, acquisitions)})
    seconds = time.perf_counter() - started
    summary = ShopSummary(out_dir, customers, seed, end_date, nights, encoding, tuple(folder_names),
                          dict(writer.rows), seconds, start_date)
    meta = {
        "generator_version": GENERATOR_VERSION,
        "seed": seed,
        "customers": customers,
        "end_date": end_date.isoformat(),
        "nights": nights,
        "encoding": encoding,
        "chunk_customers": CHUNK_CUSTOMERS,
        "folders": folder_names,
        "rows": summary.rows,
    }
    if start_date is not None:  # only then: the default shop's marker stays as it was
        meta["start_date"] = start_date.isoformat()
    tmp = out_dir / "shop.json.tmp"
    tmp.write_text(json.dumps(meta, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    tmp.replace(marker)
    if progress:
        progress("done", 1.0)
    return summary
