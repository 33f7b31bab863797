"""What a provider's webhook body must look like before any of it is stored.

A valid signature proves who sent a body, not that it is well formed: a provider bug, a
format change or a test tool can sign anything. So the body is parsed strictly and every
event is checked against the shape the provider documents (the fields kizuna reads, with
their types; other fields are kept as they are, in the raw JSON):

- JSON strictly: UTF-8, no `NaN`/`Infinity` (Python's json accepts them by default), no
  number that overflows to infinity, no nesting deep enough to exhaust the parser;
- inside an event: at most MAX_EVENT_DEPTH levels, only finite numbers, only text that
  can be written as UTF-8 (no lone surrogates from `\\ud800` escapes);
- timestamps are integers within [2000, 2100) (SendGrid: seconds, LINE: milliseconds):
  anything else cannot be stored as a time and would break the nightly load.

A failure raises MalformedPayload with a short reason that names only our own field names
and positions, never request content: the webhook service sends it back with a 400.
"""

from __future__ import annotations

import json
import math
import re
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, StrictBool, StrictInt, StringConstraints, ValidationError

#: Levels of objects/arrays allowed inside one event (LINE's deepest documented: message → emojis → item).
MAX_EVENT_DEPTH = 16
#: Times accepted, as unix seconds: from 2000-01-01 to before 2100-01-01 (UTC).
EARLIEST_SECONDS = 946_684_800
LATEST_SECONDS = 4_102_444_800


class MalformedPayload(ValueError):
    """A body or event that is not the provider's documented shape.

    The message is short and safe to send back: it names our field names and positions only.
    """


# ---- strict JSON -------------------------------------------------------------------------------


def _refuse_constant(name: str) -> Any:
    raise MalformedPayload(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # e.g. 1e400: valid JSON syntax, but no float holds it
        raise MalformedPayload("a number is out of range")
    return value


def parse_json(body: bytes) -> Any:
    """The body as JSON, parsed strictly (see the module docstring); MalformedPayload otherwise."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedPayload("body is not UTF-8") from None
    try:
        return json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)
    except MalformedPayload:
        raise
    except RecursionError:  # the C parser guards its recursion: deep nesting ends here, not in a crash
        raise MalformedPayload("nested too deeply") from None
    except ValueError:  # not JSON, or an integer with more digits than Python converts
        raise MalformedPayload("not valid JSON") from None


_SURROGATE = re.compile("[\ud800-\udfff]")


def _check_values(value: Any) -> None:
    """Depth, finite numbers and writable text inside one event, iteratively (no recursion to exhaust)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            if depth > MAX_EVENT_DEPTH:
                raise MalformedPayload(f"nested deeper than {MAX_EVENT_DEPTH} levels")
            if isinstance(item, dict):
                for key, inner in item.items():
                    if not isinstance(key, str):
                        raise MalformedPayload("a key is not text")
                    _check_text(key)
                    stack.append((inner, depth + 1))
            else:
                stack.extend((inner, depth + 1) for inner in item)
        elif isinstance(item, str):
            _check_text(item)
        elif isinstance(item, float) and not math.isfinite(item):
            raise MalformedPayload("a number is not finite")
        elif item is not None and not isinstance(item, (bool, int, float)):
            raise MalformedPayload("a value is not JSON")


def _check_text(text: str) -> None:
    if not text.isascii() and _SURROGATE.search(text):
        raise MalformedPayload("text is not valid Unicode (lone surrogate)")


# ---- the providers' shapes ---------------------------------------------------------------------


def _time_in_range(low: int, high: int, unit: str):
    def check(value: int) -> int:
        if not low <= value < high:
            raise ValueError(f"not a time in {unit} between 2000 and 2100")
        return value
    return AfterValidator(check)


UnixSeconds = Annotated[StrictInt, _time_in_range(EARLIEST_SECONDS, LATEST_SECONDS, "seconds")]
UnixMillis = Annotated[StrictInt, _time_in_range(EARLIEST_SECONDS * 1000, LATEST_SECONDS * 1000, "milliseconds")]
#: An event name or type: SendGrid's `event`, LINE's `type`.
Name = Annotated[str, StringConstraints(min_length=1, max_length=64)]
#: An identifier: provider event ids, our custom args, LINE user ids.
Id = Annotated[str, StringConstraints(min_length=1, max_length=256)]


class _Shape(BaseModel):
    """Strict types for the fields kizuna reads (no "5" for 5, no true for 1); other fields pass."""

    model_config = ConfigDict(strict=True, extra="allow", frozen=True)


class SendGridEvent(_Shape):
    """One event of SendGrid's Event Webhook (our custom_args arrive as top-level keys)."""

    event: Name
    timestamp: UnixSeconds
    sg_event_id: Id | None = None
    sg_message_id: str | None = None
    email: str | None = None
    type: str | None = None  # bounce: `bounce` or `blocked`
    reason: str | None = None
    send_id: Id | None = None
    scenario_id: Id | None = None
    step_id: Id | None = None


class LineSource(_Shape):
    type: Name
    userId: Id | None = None


class LineDeliveryContext(_Shape):
    isRedelivery: StrictBool


class LineEvent(_Shape):
    """One event of a LINE Messaging API webhook (common properties; type-specific ones pass)."""

    type: Name
    timestamp: UnixMillis
    webhookEventId: Id | None = None
    mode: str | None = None
    source: LineSource | None = None
    deliveryContext: LineDeliveryContext | None = None


_KNOWN_FIELDS = frozenset().union(*(m.model_fields for m in (SendGridEvent, LineSource, LineDeliveryContext,
                                                              LineEvent)))


def _reason(where: str, error: ValidationError) -> str:
    """A short reason from pydantic's first error: our field names only, never the input."""
    first = error.errors(include_url=False, include_input=False, include_context=False)[0]
    path = ".".join(str(p) for p in first["loc"] if isinstance(p, int) or p in _KNOWN_FIELDS)
    message = re.sub(r" or instance of \w+", "", first["msg"].removeprefix("Value error, "))
    return f"{where}: {path}: {message}" if path else f"{where}: {message}"


def _validate(model: type[_Shape], event: Any, where: str) -> Any:
    if not isinstance(event, dict):
        raise MalformedPayload(f"{where}: not a JSON object")
    try:
        _check_values(event)
    except MalformedPayload as exc:
        raise MalformedPayload(f"{where}: {exc}") from None
    try:
        return model.model_validate(event)
    except ValidationError as exc:
        raise MalformedPayload(_reason(where, exc)) from None


def sendgrid_event(event: Any, position: int = 0) -> SendGridEvent:
    """One SendGrid event, validated; MalformedPayload("event <position>: ...") when it is not one."""
    return _validate(SendGridEvent, event, f"event {position}")


def line_event(event: Any, position: int = 0) -> LineEvent:
    """One LINE webhook event, validated; MalformedPayload("event <position>: ...") when it is not one."""
    return _validate(LineEvent, event, f"event {position}")


def sendgrid_batch(document: Any) -> list[Any]:
    """The events of a SendGrid body, which is a JSON array of them (each is checked when stored)."""
    if not isinstance(document, list):
        raise MalformedPayload("expected a JSON array of events")
    return document


def line_batch(document: Any) -> list[Any]:
    """The events of a LINE body: an object whose `events` is an array (empty for LINE's verify call)."""
    if not isinstance(document, dict):
        raise MalformedPayload("expected a JSON object")
    events = document.get("events")
    if not isinstance(events, list):
        raise MalformedPayload("events: expected a JSON array")
    destination = document.get("destination")
    if destination is not None and not isinstance(destination, str):
        raise MalformedPayload("destination: expected text")
    return events
