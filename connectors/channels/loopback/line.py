"""A loopback LINE Messaging API: `POST /v2/bot/message/multicast`.

Checked like LINE: Bearer channel access token (401), JSON (400), `to` 1..500 user ids
(U + 32 hex), `messages` 1..5, text messages 1..5,000 characters, `X-Line-Retry-Key` a
UUID (400 otherwise). A retry key already accepted gets 409 with
`X-Line-Accepted-Request-Id`, and nothing is sent twice, for `key_life` seconds (LINE: 24
hours) by the server's clock; after that the key is forgotten, like LINE forgets it, and
the same request is delivered again (`advance` moves the clock to test just that).
Accepted: 200 `{}` with `X-Line-Request-Id`; `accepted` holds one record per user id, and
`deliveries` counts deliveries per user id (a multicast carries no id of ours; what a
duplicate looks like to the customer is one more copy to their user id).
"""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

from connectors.channels.loopback.server import LoopbackServer, Reply, bearer

_USER_ID = re.compile(r"^U[0-9a-f]{32}$")


#: How long LINE honours a retry key.
KEY_LIFE_SECONDS = 24 * 3600


class LineLoopback(LoopbackServer):
    provider = "line"
    delivery_key = "user_id"

    def __init__(self, access_token: str = "line-loopback-token", key_life: float = KEY_LIFE_SECONDS,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.access_token = access_token
        self.key_life = key_life
        self.accepted_keys: dict[str, tuple[str, float]] = {}  # retry key -> (request id, accepted at)

    def reset(self) -> None:
        super().reset()
        with self.lock:
            self.accepted_keys.clear()

    def _accepted_request(self, key: str) -> str | None:
        """The request id that accepted `key` within its life, else None (call under the lock)."""
        found = self.accepted_keys.get(key)
        if found is None or self.now() - found[1] >= self.key_life:
            return None
        return found[0]

    def handle(self, method: str, path: str, headers: Any, body: bytes) -> Reply:
        if path != "/v2/bot/message/multicast" or method != "POST":
            return Reply(404, {"message": "Not found"})
        if bearer(headers) != self.access_token:
            return Reply(401, {"message": "Authentication failed. Confirm that the access token in the "
                                          "authorization header is valid."})
        key = headers.get("X-Line-Retry-Key")
        if key is not None:
            try:
                uuid.UUID(key)
            except ValueError:
                return Reply(400, {"message": "The value for the 'X-Line-Retry-Key' header is invalid"})
            with self.lock:
                if (earlier := self._accepted_request(key)) is not None:
                    return Reply(409, {"message": "The retry key is already accepted"},
                                 {"X-Line-Accepted-Request-Id": earlier})
        try:
            data = json.loads(body)
        except ValueError:
            return Reply(400, {"message": "The request body has 1 error(s)", "details": [{"message": "invalid JSON"}]})
        to, messages = data.get("to"), data.get("messages")
        if not isinstance(to, list) or not 1 <= len(to) <= 500:
            return Reply(400, {"message": "The request body has 1 error(s)",
                               "details": [{"message": "Size must be between 1 and 500", "property": "to"}]})
        if any(not isinstance(u, str) or not _USER_ID.match(u) for u in to):
            return Reply(400, {"message": "The request body has 1 error(s)",
                               "details": [{"message": "Invalid user ID", "property": "to"}]})
        if not isinstance(messages, list) or not 1 <= len(messages) <= 5:
            return Reply(400, {"message": "The request body has 1 error(s)",
                               "details": [{"message": "Size must be between 1 and 5", "property": "messages"}]})
        for i, m in enumerate(messages):
            if m.get("type") == "text" and not (isinstance(m.get("text"), str) and 1 <= len(m["text"]) <= 5000):
                return Reply(400, {"message": "The request body has 1 error(s)",
                                   "details": [{"message": "Length must be between 1 and 5000",
                                                "property": f"messages[{i}].text"}]})
        request_id = str(uuid.uuid4())
        with self.lock:
            if key is not None:
                if (earlier := self._accepted_request(key)) is not None:  # a concurrent duplicate
                    return Reply(409, {"message": "The retry key is already accepted"},
                                 {"X-Line-Accepted-Request-Id": earlier})
                self.accepted_keys[key] = (request_id, self.now())
        self._accept([{"to": u, "messages": messages, "retry_key": key, "request_id": request_id} for u in to], to)
        return Reply(200, {}, {"X-Line-Request-Id": request_id})
