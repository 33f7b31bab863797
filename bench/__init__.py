"""Benchmarks: `python -m bench --help` (or `make bench`)."""

#: The sender identity the benchmarks send under through the loopback providers: a live provider
#: refuses to send in the demo shop's name (connectors/channels/registry.py), and the benchmarks
#: drive the loopback SendGrid and LINE as live providers. A value already in the environment wins.
BENCH_SHOP_IDENTITY = {
    "KIZUNA_SENDER_NAME": "ベンチ商店 (Bench Shop)",
    "KIZUNA_SENDER_ADDRESS": "〒100-0001 東京都千代田区千代田1-1",
    "KIZUNA_SENDER_CONTACT": "support@bench-shop.example",
    "KIZUNA_SENDER_EMAIL": "news@bench-shop.example",
    "KIZUNA_UNSUBSCRIBE_BASE_URL": "https://bench-shop.example/unsubscribe",
    "KIZUNA_BRAND_SHOP_URL": "https://bench-shop.example",
    "KIZUNA_BRAND_LOGO_URL": "",
    "KIZUNA_BRAND_PRODUCT_IMAGE_URL": "",
}
