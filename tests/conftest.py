"""Shared test set-up.

Every test runs as a configured shop: the sender identity (KIZUNA_SENDER_*, the unsubscribe URL)
is a test shop's, not the demo defaults, because a live provider (the loopback SendGrid, LINE,
Twilio) refuses to send in the demo shop's name (connectors/channels/registry.py
`require_sender_identity`). It is set for the whole session, before any fixture (module-scoped
ones start subprocesses that read it too); tests of the refusal remove it with
`monkeypatch.delenv`. A value already in the environment is kept.
"""

from __future__ import annotations

import os

import pytest

TEST_SHOP_IDENTITY = {
    "KIZUNA_SENDER_NAME": "テスト商店株式会社 (Test Shop K.K.)",
    "KIZUNA_SENDER_ADDRESS": "〒100-0001 東京都千代田区千代田1-1 テストビル",
    "KIZUNA_SENDER_CONTACT": "support@test-shop.example / 03-0000-0000",
    "KIZUNA_SENDER_EMAIL": "news@test-shop.example",
    "KIZUNA_UNSUBSCRIBE_BASE_URL": "https://test-shop.example/unsubscribe",
    "KIZUNA_BRAND_SHOP_URL": "https://test-shop.example",
    "KIZUNA_BRAND_LOGO_URL": "https://test-shop.example/images/logo.png",
    "KIZUNA_BRAND_PRODUCT_IMAGE_URL": "https://test-shop.example/images/product.jpg",
}


def pytest_configure(config) -> None:
    for var, value in TEST_SHOP_IDENTITY.items():
        os.environ.setdefault(var, value)


@pytest.fixture(autouse=True)
def _no_unsubscribe_secret_from_the_machine(monkeypatch):
    """Each test's data folder generates its own unsubscribe key."""
    monkeypatch.delenv("KIZUNA_UNSUBSCRIBE_SECRET", raising=False)
    monkeypatch.delenv("KIZUNA_UNSUBSCRIBE_SECRET_BLOCK", raising=False)


@pytest.fixture
def settings(tmp_path):
    """A shop of its own in the test's folder (a test file may define its own `settings` instead)."""
    from kizuna.config import Settings

    return Settings(home=tmp_path, data_dir=tmp_path / "data")


@pytest.fixture
def english_messages(monkeypatch):
    """The English source wording (`KIZUNA_LOCALE=en`), for tests that read what a message says rather than its
    language; the Japanese wording is tested in tests/test_locale.py. Use: `pytestmark =
    pytest.mark.usefixtures("english_messages")`."""
    from kizuna.config import get_settings

    monkeypatch.setenv("KIZUNA_LOCALE", "en")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()
