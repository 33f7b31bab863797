"""`KIZUNA_SOURCE=shopify`: a Shopify shop's Admin GraphQL API as kizuna's nightly exports.

`source.py` makes nights of the API (first load by bulk operation, later nights by
incremental queries on `updated_at`, the sync point kept in `raw._shopify_sync`),
`client.py` speaks HTTP (cost-based throttling, retries, bulk operations), `queries.py` says
what is asked (and pins the API version), `mapping.py` turns each object into flat records
and `transform.py` joins them into kizuna's CSV files. docs/sources/shopify.md is the
reference for people: settings, scopes, every mapping rule and what Shopify cannot carry.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from connectors.sources.shopify.queries import API_VERSION
from connectors.sources.shopify.source import ShopifySource
from kizuna.errors import KizunaError

__all__ = ["API_VERSION", "ShopifySource", "endpoint_for", "source_from_settings"]

_LOOPBACK = ("127.0.0.1", "::1", "localhost")


def endpoint_for(shop: str, api_url: str | None) -> str:
    """The GraphQL endpoint: `<api_url or https://shop>/admin/api/<API_VERSION>/graphql.json`."""
    if not shop and not api_url:
        raise KizunaError("KIZUNA_SOURCE=shopify needs the shop: set KIZUNA_SHOPIFY_SHOP to its myshopify.com "
                          "domain (e.g. kizuna-demo.myshopify.com).")
    if shop and "/" in shop:
        raise KizunaError(f"KIZUNA_SHOPIFY_SHOP is the shop's domain only (e.g. kizuna-demo.myshopify.com), not "
                          f"{shop!r}; a different API address goes in KIZUNA_SHOPIFY_API_URL.")
    base = (api_url or f"https://{shop}").rstrip("/")
    parts = urlsplit(base)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise KizunaError(f"KIZUNA_SHOPIFY_API_URL must be an https:// address, not {base!r}.")
    if parts.scheme == "http" and parts.hostname not in _LOOPBACK:
        raise KizunaError(f"KIZUNA_SHOPIFY_API_URL {base!r} is plain http: the access token would cross the "
                          "network unencrypted. Use https (plain http is accepted on this machine's loopback only, "
                          "for the twin).")
    return f"{base}/admin/api/{API_VERSION}/graphql.json"


def source_from_settings(settings) -> ShopifySource:
    """`KIZUNA_SOURCE=shopify`: `KIZUNA_SHOPIFY_SHOP`, optional `KIZUNA_SHOPIFY_API_URL`, the secret
    `SHOPIFY_ACCESS_TOKEN` (kizuna/secrets.py), nights in `KIZUNA_TIMEZONE`, files in `KIZUNA_LANDING_DIR`."""
    from kizuna.secrets import get_secret

    endpoint = endpoint_for(settings.shopify_shop, settings.shopify_api_url)
    return ShopifySource(endpoint=endpoint, token=get_secret("SHOPIFY_ACCESS_TOKEN"),
                         shop=settings.shopify_shop or urlsplit(endpoint).netloc, landing_dir=settings.landing_dir,
                         archive_dir=settings.archive_dir, timezone_name=settings.timezone)
