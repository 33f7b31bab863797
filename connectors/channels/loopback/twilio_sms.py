"""A loopback Twilio: `POST /2010-04-01/Accounts/{AccountSid}/Messages.json`.

Checked like Twilio: HTTP Basic auth with the account SID and auth token, and the SID
in the path the same (401, code 20003), form-encoded fields `To` (E.164, 21211),
`From` or `MessagingServiceSid` (21603), `Body` 1..1,600 characters (21602 / 21617).
Accepted: 201 with a message resource (`sid` SM..., status `queued`).
"""

from __future__ import annotations

import base64
import re
import uuid
from typing import Any
from urllib.parse import parse_qs

from connectors.channels.loopback.server import LoopbackServer, Reply

_PATH = re.compile(r"^/2010-04-01/Accounts/(AC[0-9a-zA-Z]+)/Messages\.json$")
_E164 = re.compile(r"^\+[1-9]\d{7,14}$")


def _error(status: int, code: int, message: str) -> Reply:
    return Reply(status, {"code": code, "message": message, "more_info": f"https://www.twilio.com/docs/errors/{code}",
                          "status": status})


class TwilioLoopback(LoopbackServer):
    provider = "twilio"

    def __init__(self, account_sid: str = "AC" + "0" * 32, auth_token: str = "twilio-loopback-token",
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.account_sid = account_sid
        self.auth_token = auth_token

    def handle(self, method: str, path: str, headers: Any, body: bytes) -> Reply:
        match = _PATH.match(path.split("?")[0])
        if not match or method != "POST":
            return _error(404, 20404, "The requested resource was not found")
        expected = "Basic " + base64.b64encode(f"{self.account_sid}:{self.auth_token}".encode()).decode()
        if headers.get("Authorization") != expected or match.group(1) != self.account_sid:
            return _error(401, 20003, "Authenticate")
        if "application/x-www-form-urlencoded" not in (headers.get("Content-Type") or ""):
            return _error(400, 20001, "Content-Type must be application/x-www-form-urlencoded")
        form = {k: v[0] for k, v in parse_qs(body.decode("utf-8"), keep_blank_values=True).items()}
        to, sender, service, text = form.get("To", ""), form.get("From", ""), form.get("MessagingServiceSid", ""), \
            form.get("Body", "")
        if not _E164.match(to):
            return _error(400, 21211, f"The 'To' number {to} is not a valid phone number.")
        if not sender and not service:
            return _error(400, 21603, "A 'From' or 'MessagingServiceSid' parameter is required to send a message.")
        if not text:
            return _error(400, 21602, "Message body is required.")
        if len(text) > 1600:
            return _error(400, 21617, "The concatenated message body exceeds the 1600 character limit.")
        sid = "SM" + uuid.uuid4().hex
        self._accept([{"sid": sid, "to": to, "from": sender, "messaging_service_sid": service, "body": text}])
        return Reply(201, {"sid": sid, "account_sid": self.account_sid, "to": to, "from": sender or None,
                           "messaging_service_sid": service or None, "body": text, "status": "queued",
                           "num_segments": "1", "direction": "outbound-api", "api_version": "2010-04-01",
                           "uri": f"/2010-04-01/Accounts/{self.account_sid}/Messages/{sid}.json"})
