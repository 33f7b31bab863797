"""Shared test set-up.

Every test runs as a configured shop: the sender identity (KIZUNA_SENDER_*, the unsubscribe URL)
is set to a test shop's, not the demo defaults, because a live provider (the loopback SendGrid,
LINE, Twilio) refuses to send in the demo shop's name (connectors/channels/registry.py
`require_sender_identity`). Tests of that refusal remove these with `monkeypatch.delenv`.
"""

from __future__ import annotations

import pytest

TEST_SHOP_IDENTITY = {
    "KIZUNA_SENDER_NAME": "テスト商店株式会社 (Test Shop K.K.)",
    "KIZUNA_SENDER_ADDRESS": "〒100-0001 東京都千代田区千代田1-1 テストビル",
    "KIZUNA_SENDER_CONTACT": "support@test-shop.example / 03-0000-0000",
    "KIZUNA_SENDER_EMAIL": "news@test-shop.example",
    "KIZUNA_UNSUBSCRIBE_BASE_URL": "https://test-shop.example/unsubscribe",
}


@pytest.fixture(autouse=True)
def _a_configured_shop_identity(monkeypatch):
    for var, value in TEST_SHOP_IDENTITY.items():
        monkeypatch.setenv(var, value)
    monkeypatch.delenv("KIZUNA_UNSUBSCRIBE_SECRET", raising=False)
    monkeypatch.delenv("KIZUNA_UNSUBSCRIBE_SECRET_BLOCK", raising=False)
