"""A loopback Shopify: the Admin GraphQL API of one shop, seeded from kizuna's own exports.

`POST /admin/api/<version>/graphql.json` with `X-Shopify-Access-Token` (401 otherwise, 404
for another version), answering the queries and the mutation the Shopify source sends,
validated like Shopify (`graphql_subset`: an unknown field, argument or type is an error,
connections need `first` or `last`, at most 250):

* `shop { ianaTimezone currencyCode ... }`; `customers`, `orders` (with `lineItems` and
  the `fulfillments` list), `productVariants`, `abandonedCheckouts` (with `lineItems`) as
  connections with `edges`/`node`/`nodes`, `pageInfo { hasNextPage endCursor }` and
  `after`, filtered by `query:` in Shopify's search syntax (`updated_at` and `created_at`
  with `> >= < <= :`, joined by AND; any other field is ignored and named in
  `extensions.search` warnings, as Shopify does); `node(id:)` with inline fragments.
* **Bulk operations**: `bulkOperationRunQuery(query:)` checks the query (one top-level
  connection, at most 5 connections nested 2 deep, `id` on nodes with nested connections,
  no variables) and takes a snapshot; the operation is CREATED, RUNNING at the next poll
  (`node(id:) { ... on BulkOperation }`), then COMPLETED with a `url` to a JSONL file (one
  line per node, nested connections' nodes as their own lines with `__parentId`), or
  FAILED with an `errorCode` when `fail_next_bulk()` asked for it. The file is served from
  a signed path: the URL itself is the credential, and a download that carries the access
  token is counted in `token_leaks`.
* **Code discounts**: `discountCodeBasicCreate(basicCodeDiscount:)`, its input checked field by
  field; a blank code or title, a code another discount has (`TAKEN`, case-insensitive), a
  value other than one percentage (0..1] or amount, a buyer who is not a customer of the shop
  are `userErrors` as Shopify gives them; what was created is in `discounts`.
* **Calculated query cost**: every answer carries `extensions.cost` (requested and actual
  cost, `throttleStatus` of a leaky bucket: 1,000 points, restoring `restore_rate` per
  second). A query costing more than the bucket holds gets `THROTTLED` (HTTP 200, no
  data); one above 1,000 points `MAX_COST_EXCEEDED`. `throttle_share` makes that share of
  requests THROTTLED anyway (another app of the shop used the budget), with a bucket low
  enough that waiting is needed.
* **Time**: the shop shows one night of a generated shop's exports at a time (the first
  folder, a full history, then `next_night()` shows the next folder's changes); its clock
  (the `Date` header) stands at 02:00 the morning after that night. Each kizuna row becomes
  what Shopify would hold: ids as numeric global ids, Japan times as UTC, yen as Money,
  phones in E.164, prefectures with their ISO 3166-2 code, consent as marketing states; a
  customer's `updatedAt` moves with their consent, an order's with its fulfilments, and a
  cancelled or returned order arrives as a later version of itself (`cancelledAt`,
  `displayFinancialStatus` REFUNDED).

What the generated shop holds and Shopify does not (kana, gender, birth date, LINE ids,
erasure requests, media and ad spend, surveys, subscription contracts, a cart's order) is
simply not served. `edit()` changes a row as the merchant would (for tests).
"""

from __future__ import annotations

import csv
import email.utils
import json
import random
import re
import secrets
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import date, datetime, time as clock_time, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit
from zoneinfo import ZoneInfo

from connectors.channels.loopback import graphql_subset as gql
from connectors.channels.loopback.graphql_subset import FieldDef, GraphQLError
from connectors.channels.loopback.server import LoopbackServer, Reply
from connectors.sources.export_format import EXPORT_FILES_BY_TABLE
from connectors.sources.shopify.mapping import JP_PREFECTURES
from connectors.sources.shopify.queries import API_VERSION

DEFAULT_TOKEN = "shpat_loopback-test-token"  # the twin's own, not a secret
MAX_QUERY_COST = 1000
MAX_BULK_CONNECTIONS = 5
_NIGHT = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_PREFECTURE_CODES = {kanji: (code, english) for code, (kanji, english) in JP_PREFECTURES.items()}

# -- the schema served ---------------------------------------------------------------------------

_SEARCHABLE = {**gql.CONNECTION_ARGS, "query": "String", "sortKey": "String"}
_NODE_TYPES = ["Customer", "Order", "LineItem", "Fulfillment", "ProductVariant", "Product", "InventoryItem",
               "AbandonedCheckout", "AbandonedCheckoutLineItem", "BulkOperation"]


def _f(type_: str, **args: str) -> FieldDef:
    return FieldDef(type_, dict(args))


def _schema() -> gql.Schema:
    money = {"shopMoney": _f("MoneyV2!"), "presentmentMoney": _f("MoneyV2!")}
    types: dict[str, dict[str, FieldDef]] = {
        "QueryRoot": {
            "shop": _f("Shop!"),
            "customers": FieldDef("CustomerConnection!", _SEARCHABLE),
            "orders": FieldDef("OrderConnection!", _SEARCHABLE),
            "productVariants": FieldDef("ProductVariantConnection!", _SEARCHABLE),
            "abandonedCheckouts": FieldDef("AbandonedCheckoutConnection!", _SEARCHABLE),
            "node": _f("Node", id="ID!"),
        },
        "Mutation": {"bulkOperationRunQuery": _f("BulkOperationRunQueryPayload", query="String!",
                                                 groupObjects="Boolean"),
                     "discountCodeBasicCreate": _f("DiscountCodeBasicCreatePayload",
                                                   basicCodeDiscount="DiscountCodeBasicInput!")},
        "DiscountCodeBasicCreatePayload": {"codeDiscountNode": _f("DiscountCodeNode"),
                                           "userErrors": _f("[DiscountUserError!]!")},
        "DiscountCodeNode": {"id": _f("ID!")},
        "DiscountUserError": {"field": _f("[String!]"), "message": _f("String!"), "code": _f("DiscountErrorCode"),
                              "extraInfo": _f("String")},
        "Node": {"id": _f("ID!")},
        "Shop": {"name": _f("String!"), "myshopifyDomain": _f("String!"), "ianaTimezone": _f("String!"),
                 "currencyCode": _f("CurrencyCode!")},
        "Customer": {
            "id": _f("ID!"), "firstName": _f("String"), "lastName": _f("String"), "displayName": _f("String!"),
            "email": _f("String"), "phone": _f("String"), "createdAt": _f("DateTime!"), "updatedAt": _f("DateTime!"),
            "defaultAddress": _f("MailingAddress"),
            "emailMarketingConsent": _f("CustomerEmailMarketingConsentState"),
            "smsMarketingConsent": _f("CustomerSmsMarketingConsentState"),
        },
        "MailingAddress": {k: _f("String") for k in ("zip", "province", "provinceCode", "city", "address1",
                                                     "address2", "country", "countryCodeV2")},
        "CustomerEmailMarketingConsentState": {"marketingState": _f("CustomerEmailMarketingState!"),
                                               "consentUpdatedAt": _f("DateTime"),
                                               "marketingOptInLevel": _f("CustomerMarketingOptInLevel")},
        "CustomerSmsMarketingConsentState": {"marketingState": _f("CustomerSmsMarketingState!"),
                                             "consentUpdatedAt": _f("DateTime"),
                                             "marketingOptInLevel": _f("CustomerMarketingOptInLevel!"),
                                             "consentCollectedFrom": _f("CustomerConsentCollectedFrom")},
        "Order": {
            "id": _f("ID!"), "name": _f("String!"), "createdAt": _f("DateTime!"), "processedAt": _f("DateTime!"),
            "updatedAt": _f("DateTime!"), "cancelledAt": _f("DateTime"),
            "displayFinancialStatus": _f("OrderDisplayFinancialStatus"), "customer": _f("Customer"),
            "discountCodes": _f("[String!]!"), "subtotalPriceSet": _f("MoneyBag"),
            "totalDiscountsSet": _f("MoneyBag"), "totalShippingPriceSet": _f("MoneyBag!"),
            "totalPriceSet": _f("MoneyBag!"), "paymentGatewayNames": _f("[String!]!"),
            "customerJourneySummary": _f("CustomerJourneySummary"),
            "fulfillments": _f("[Fulfillment!]!", first="Int"),
            "lineItems": FieldDef("LineItemConnection!", gql.CONNECTION_ARGS),
        },
        "MoneyBag": money,
        "MoneyV2": {"amount": _f("Decimal!"), "currencyCode": _f("CurrencyCode!")},
        "CustomerJourneySummary": {"firstVisit": _f("CustomerVisit"), "lastVisit": _f("CustomerVisit")},
        "CustomerVisit": {"landingPage": _f("URL"), "referrerUrl": _f("URL"), "source": _f("String!"),
                          "utmParameters": _f("UTMParameters")},
        "UTMParameters": {k: _f("String") for k in ("source", "medium", "campaign", "content", "term")},
        "Fulfillment": {"id": _f("ID!"), "createdAt": _f("DateTime!"), "updatedAt": _f("DateTime!"),
                        "deliveredAt": _f("DateTime"), "status": _f("String!"),
                        "trackingInfo": _f("[FulfillmentTrackingInfo!]!", first="Int")},
        "FulfillmentTrackingInfo": {"company": _f("String"), "number": _f("String"), "url": _f("URL")},
        "LineItem": {"id": _f("ID!"), "name": _f("String!"), "sku": _f("String"), "quantity": _f("Int!"),
                     "variant": _f("ProductVariant"), "originalUnitPriceSet": _f("MoneyBag!"),
                     "originalTotalSet": _f("MoneyBag!"), "sellingPlan": _f("LineItemSellingPlan")},
        "LineItemSellingPlan": {"name": _f("String!"), "sellingPlanId": _f("ID")},
        "ProductVariant": {"id": _f("ID!"), "sku": _f("String"), "title": _f("String!"), "price": _f("Money!"),
                           "createdAt": _f("DateTime!"), "updatedAt": _f("DateTime!"),
                           "sellingPlanGroupsCount": _f("Count"), "inventoryItem": _f("InventoryItem!"),
                           "product": _f("Product!")},
        "Count": {"count": _f("Int!"), "precision": _f("CountPrecision!")},
        "InventoryItem": {"id": _f("ID!"), "updatedAt": _f("DateTime!"), "unitCost": _f("MoneyV2")},
        "Product": {"id": _f("ID!"), "title": _f("String!"), "productType": _f("String!"),
                    "createdAt": _f("DateTime!"), "updatedAt": _f("DateTime!")},
        "AbandonedCheckout": {"id": _f("ID!"), "createdAt": _f("DateTime!"), "updatedAt": _f("DateTime!"),
                              "completedAt": _f("DateTime"), "customer": _f("Customer"),
                              "totalLineItemsPriceSet": _f("MoneyBag!"), "totalPriceSet": _f("MoneyBag!"),
                              "lineItems": FieldDef("AbandonedCheckoutLineItemConnection!", gql.CONNECTION_ARGS)},
        "AbandonedCheckoutLineItem": {"id": _f("ID!"), "title": _f("String"), "quantity": _f("Int!"),
                                      "variant": _f("ProductVariant")},
        "BulkOperation": {"id": _f("ID!"), "status": _f("BulkOperationStatus!"),
                          "errorCode": _f("BulkOperationErrorCode"), "createdAt": _f("DateTime!"),
                          "completedAt": _f("DateTime"), "objectCount": _f("UnsignedInt64!"),
                          "rootObjectCount": _f("UnsignedInt64!"), "fileSize": _f("UnsignedInt64"),
                          "url": _f("URL"), "partialDataUrl": _f("URL"), "query": _f("String!"),
                          "type": _f("BulkOperationType!")},
        "BulkOperationRunQueryPayload": {"bulkOperation": _f("BulkOperation"),
                                         "userErrors": _f("[BulkOperationUserError!]!")},
        "BulkOperationUserError": {"field": _f("[String!]"), "message": _f("String!"), "code": _f("String")},
        **gql.connection_types(["Customer", "Order", "ProductVariant", "AbandonedCheckout", "LineItem",
                                "AbandonedCheckoutLineItem"]),
    }
    enums = {
        "CurrencyCode": {"JPY", "USD", "EUR", "GBP", "CAD", "AUD"},
        "CustomerEmailMarketingState": {"INVALID", "NOT_SUBSCRIBED", "PENDING", "REDACTED", "SUBSCRIBED",
                                        "UNSUBSCRIBED"},
        "CustomerSmsMarketingState": {"NOT_SUBSCRIBED", "PENDING", "REDACTED", "SUBSCRIBED", "UNSUBSCRIBED"},
        "CustomerMarketingOptInLevel": {"SINGLE_OPT_IN", "CONFIRMED_OPT_IN", "UNKNOWN"},
        "CustomerConsentCollectedFrom": {"SHOPIFY", "OTHER"},
        "OrderDisplayFinancialStatus": {"AUTHORIZED", "EXPIRED", "PAID", "PARTIALLY_PAID", "PARTIALLY_REFUNDED",
                                        "PENDING", "REFUNDED", "VOIDED"},
        "BulkOperationStatus": {"CANCELED", "CANCELING", "COMPLETED", "CREATED", "EXPIRED", "FAILED", "RUNNING"},
        "BulkOperationErrorCode": {"ACCESS_DENIED", "INTERNAL_SERVER_ERROR", "TIMEOUT"},
        "BulkOperationType": {"QUERY", "MUTATION"},
        "CountPrecision": {"EXACT", "AT_LEAST"},
        "DiscountBuyerSelection": {"ALL"},
        "DiscountErrorCode": {"BLANK", "INVALID", "TAKEN", "TOO_SHORT", "TOO_LONG", "GREATER_THAN",
                              "LESS_THAN_OR_EQUAL_TO", "PRESENT", "MISSING_ARGUMENT", "CONFLICT",
                              "INTERNAL_ERROR"},
    }
    # The input objects of discountCodeBasicCreate (API 2026-10), as far as kizuna sends them.
    inputs = {
        "DiscountCodeBasicInput": {
            "title": "String", "code": "String", "startsAt": "DateTime", "endsAt": "DateTime", "usageLimit": "Int",
            "appliesOncePerCustomer": "Boolean", "context": "DiscountContextInput",
            "customerGets": "DiscountCustomerGetsInput", "recurringCycleLimit": "Int"},
        "DiscountContextInput": {"all": "DiscountBuyerSelection", "customers": "DiscountCustomersInput",
                                 "customerSegments": "DiscountCustomerSegmentsInput"},
        "DiscountCustomersInput": {"add": "[ID!]", "remove": "[ID!]"},
        "DiscountCustomerSegmentsInput": {"add": "[ID!]", "remove": "[ID!]"},
        "DiscountCustomerGetsInput": {"value": "DiscountCustomerGetsValueInput", "items": "DiscountItemsInput",
                                      "appliesOnOneTimePurchase": "Boolean", "appliesOnSubscription": "Boolean"},
        "DiscountCustomerGetsValueInput": {"percentage": "Float", "discountAmount": "DiscountAmountInput"},
        "DiscountAmountInput": {"amount": "Decimal", "appliesOnEachItem": "Boolean"},
        "DiscountItemsInput": {"all": "Boolean"},
    }
    scalars = {"String", "ID", "Int", "Float", "Boolean", "DateTime", "URL", "Decimal", "Money", "UnsignedInt64"}
    return gql.Schema(types, scalars, enums, {"Node": set(_NODE_TYPES)}, inputs=inputs)


SCHEMA = _schema()

# -- kizuna rows as Shopify objects ---------------------------------------------------------------


def _none(value: str | None) -> str | None:
    return value if value not in (None, "") else None


def _number(kizuna_id: str) -> int:
    """The twin's numeric id for a kizuna key (its digits: C0000123 -> 123)."""
    digits = re.sub(r"\D", "", kizuna_id or "")
    if not digits:
        raise ValueError(f"the twin needs a number in every id, not {kizuna_id!r}")
    return int(digits)


def _gid(type_: str, number: int) -> str:
    return f"gid://shopify/{type_}/{number}"


def _money(yen: str | int | None) -> dict[str, Any] | None:
    if yen in (None, ""):
        return None
    amount = {"amount": f"{int(yen)}.0", "currencyCode": "JPY"}
    return {"shopMoney": amount, "presentmentMoney": dict(amount)}


def _e164(phone: str | None) -> str | None:
    if not phone:
        return None
    digits = re.sub(r"\D", "", phone)
    return "+81" + digits[1:] if digits.startswith("0") else phone


def _encoding(path: Path) -> str:
    """UTF-8 when the whole file is, else CP932 (the two encodings of kizuna's export format)."""
    try:
        path.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        return "cp932"
    return "utf-8-sig"


class ShopView:
    """The shop as Shopify holds it at one moment: objects by type, each list in id order."""

    def __init__(self, rows: dict[str, dict[tuple, dict[str, str]]], zone: ZoneInfo, domain: str,
                 media_types: dict[str, str]) -> None:
        self.zone, self.domain, self.media_types = zone, domain, media_types
        by = {t: list(r.values()) for t, r in rows.items()}
        consents: dict[str, dict[str, dict[str, str]]] = {}
        for c in by.get("consents", []):
            consents.setdefault(c["customer_id"], {})[c["channel"]] = c
        self.variants = {_number(p["product_id"]): self._variant(p) for p in by.get("products", [])}
        self.customers = {_number(c["customer_id"]): self._customer(c, consents.get(c["customer_id"], {}))
                          for c in by.get("customers", [])}
        lines: dict[str, list[dict[str, str]]] = {}
        for line in by.get("order_lines", []):
            lines.setdefault(line["order_id"], []).append(line)
        ships: dict[str, list[dict[str, str]]] = {}
        for s in by.get("shipments", []):
            ships.setdefault(s["order_id"], []).append(s)
        self.orders = {_number(o["order_id"]): self._order(o, lines.get(o["order_id"], []),
                                                           ships.get(o["order_id"], []))
                       for o in by.get("orders", [])}
        self.checkouts = {_number(c["cart_id"]): self._checkout(c) for c in by.get("carts", [])}
        self.lists = {name: [objs[k] for k in sorted(objs)] for name, objs in (
            ("customers", self.customers), ("orders", self.orders), ("productVariants", self.variants),
            ("abandonedCheckouts", self.checkouts))}

    # times
    def at(self, local: str | None) -> datetime | None:
        if not local:
            return None
        return datetime.fromisoformat(local).replace(tzinfo=self.zone).astimezone(timezone.utc)

    @staticmethod
    def iso(at: datetime | None) -> str | None:
        return at.strftime("%Y-%m-%dT%H:%M:%SZ") if at else None

    def _stamp(self, obj: dict[str, Any], number: int, type_: str, updated: datetime, created: datetime | None):
        obj.update({"__typename": type_, "_id": number, "_updated": updated, "_created": created or updated,
                    "id": _gid(type_, number)})
        return obj

    def _consent(self, row: dict[str, str] | None) -> dict[str, Any]:
        if row is None:
            return {"marketingState": "NOT_SUBSCRIBED", "consentUpdatedAt": None, "marketingOptInLevel": None,
                    "consentCollectedFrom": None}
        granted = row["status"] == "granted"
        at = row["consented_at"] if granted else (row.get("withdrawn_at") or row["updated_at"])
        return {"marketingState": "SUBSCRIBED" if granted else "UNSUBSCRIBED",
                "consentUpdatedAt": self.iso(self.at(at)),
                "marketingOptInLevel": "SINGLE_OPT_IN", "consentCollectedFrom": "SHOPIFY"}

    def _customer(self, row: dict[str, str], consents: dict[str, dict[str, str]]) -> dict[str, Any]:
        email, phone = _none(row.get("email")), _none(row.get("phone"))
        # Shopify keeps e-mail consent with an address and SMS consent with a number; changing it changes the customer.
        mine = [c for ch, c in consents.items() if (ch == "email" and email) or (ch == "sms" and phone)]
        updated = max([self.at(row["updated_at"])] + [self.at(c["updated_at"]) for c in mine])
        address = None
        if any(_none(row.get(k)) for k in ("postal_code", "prefecture", "city", "address_line")):
            code, english = _PREFECTURE_CODES.get(row.get("prefecture") or "", (None, _none(row.get("prefecture"))))
            first, _, rest = (row.get("address_line") or "").partition(" ")
            address = {"zip": _none(row.get("postal_code")), "province": english, "provinceCode": code,
                       "city": _none(row.get("city")), "address1": _none(first), "address2": _none(rest),
                       "country": "Japan", "countryCodeV2": "JP"}
        obj = {"firstName": _none(row.get("first_name")), "lastName": _none(row.get("last_name")),
               "displayName": f"{row.get('last_name') or ''} {row.get('first_name') or ''}".strip(),
               "email": email, "phone": _e164(phone), "createdAt": self.iso(self.at(row["registered_at"])),
               "updatedAt": self.iso(updated), "defaultAddress": address,
               "emailMarketingConsent": self._consent(consents.get("email")) if email else None,
               "smsMarketingConsent": self._consent(consents.get("sms")) if phone else None}
        return self._stamp(obj, _number(row["customer_id"]), "Customer", updated, self.at(row["registered_at"]))

    def _journey(self, media_code: str | None) -> dict[str, Any] | None:
        if not media_code:
            return None  # no visit recorded: a subscription's renewal, an order entered by the shop
        kind = self.media_types.get(media_code)
        if kind == "organic":  # an organic visit carries no UTM parameters
            visit = {"landingPage": f"https://{self.domain}/", "referrerUrl": None, "source": "direct",
                     "utmParameters": None}
        else:
            source, _, campaign = media_code.partition("_")
            utm = {"source": source, "medium": kind, "campaign": campaign or None, "content": None, "term": None}
            query = urlencode({k: v for k, v in (("utm_source", source), ("utm_medium", kind),
                                                 ("utm_campaign", campaign)) if v})
            visit = {"landingPage": f"https://{self.domain}/?{query}", "referrerUrl": None, "source": source,
                     "utmParameters": utm}
        return {"firstVisit": visit, "lastVisit": visit}

    def _order(self, row: dict[str, str], lines: list[dict[str, str]], ships: list[dict[str, str]]):
        number = _number(row["order_id"])
        updated = max([self.at(row["updated_at"])] + [self.at(s["updated_at"]) for s in ships]
                      + [self.at(line["updated_at"]) for line in lines])
        status = row["status"]
        subtotal, discount = int(row["subtotal"]), int(row["discount"])
        customer = self.customers.get(_number(row["customer_id"])) if _none(row.get("customer_id")) else None
        items = []
        for line in sorted(lines, key=lambda r: _number(r["order_line_id"])):
            variant = self.variants.get(_number(line["product_id"]))
            plan = None
            if row["order_kind"] == "subscription" and variant and variant["sellingPlanGroupsCount"]["count"]:
                plan = {"name": "定期便", "sellingPlanId": "gid://shopify/SellingPlan/1"}
            items.append(self._stamp({
                "name": variant["product"]["title"] if variant else "", "sku": variant["sku"] if variant else None,
                "quantity": int(line["quantity"]), "variant": variant,
                "originalUnitPriceSet": _money(line["unit_price"]), "originalTotalSet": _money(line["line_amount"]),
                "sellingPlan": plan}, _number(line["order_line_id"]), "LineItem", updated, None))
        fulfillments = []
        for s in sorted(ships, key=lambda r: _number(r["shipment_id"])):
            shipped = self.at(s.get("shipped_at")) or self.at(s["updated_at"])
            tracking = [{"company": _none(s.get("carrier")), "number": _none(s.get("tracking_number")), "url": None}] \
                if _none(s.get("carrier")) or _none(s.get("tracking_number")) else []
            fulfillments.append(self._stamp({
                "createdAt": self.iso(shipped), "updatedAt": self.iso(self.at(s["updated_at"])),
                "deliveredAt": self.iso(self.at(s.get("delivered_at"))), "status": "SUCCESS",
                "trackingInfo": tracking}, _number(s["shipment_id"]), "Fulfillment", self.at(s["updated_at"]),
                shipped))
        obj = {
            "name": f"#{number}", "createdAt": self.iso(self.at(row["ordered_at"])),
            "processedAt": self.iso(self.at(row["ordered_at"])), "updatedAt": self.iso(updated),
            "cancelledAt": self.iso(self.at(row["updated_at"])) if status == "cancelled" else None,
            "displayFinancialStatus": {"cancelled": "VOIDED", "returned": "REFUNDED"}.get(status, "PAID"),
            "customer": customer, "discountCodes": [row["coupon_code"]] if _none(row.get("coupon_code")) else [],
            "subtotalPriceSet": _money(subtotal - discount), "totalDiscountsSet": _money(discount),
            "totalShippingPriceSet": _money(row["shipping_fee"]), "totalPriceSet": _money(row["total"]),
            "paymentGatewayNames": [row["payment_method"]] if _none(row.get("payment_method")) else [],
            "customerJourneySummary": self._journey(_none(row.get("media_code"))),
            "fulfillments": fulfillments, "lineItems": items,
        }
        return self._stamp(obj, number, "Order", updated, self.at(row["ordered_at"]))

    def _variant(self, row: dict[str, str]) -> dict[str, Any]:
        number = _number(row["product_id"])
        updated = self.at(row["updated_at"])
        eligible = row["is_subscription_eligible"].strip().lower() in ("true", "1")
        product = self._stamp({"title": row["product_name"], "productType": row["product_type"],
                               "createdAt": self.iso(updated), "updatedAt": self.iso(updated)},
                              number, "Product", updated, None)
        item = self._stamp({"updatedAt": self.iso(updated),
                            "unitCost": {"amount": f"{int(row['unit_cost'])}.0", "currencyCode": "JPY"}},
                           number, "InventoryItem", updated, None)
        obj = {"sku": _none(row.get("sku")), "title": "Default Title", "price": f"{int(row['list_price'])}.00",
               "createdAt": self.iso(updated), "updatedAt": self.iso(updated),
               "sellingPlanGroupsCount": {"count": 1 if eligible else 0, "precision": "EXACT"},
               "inventoryItem": item, "product": product}
        return self._stamp(obj, number, "ProductVariant", updated, None)

    def _checkout(self, row: dict[str, str]) -> dict[str, Any]:
        number = _number(row["cart_id"])
        updated = self.at(row["updated_at"])
        variant = self.variants.get(_number(row["product_id"])) if _none(row.get("product_id")) else None
        line = self._stamp({"title": variant["product"]["title"] if variant else None,
                            "quantity": int(row["quantity"]), "variant": variant},
                           number, "AbandonedCheckoutLineItem", updated, None)
        obj = {"createdAt": self.iso(self.at(row["created_at"])), "updatedAt": self.iso(updated),
               "completedAt": self.iso(updated) if row["status"] == "converted" else None,
               "customer": self.customers.get(_number(row["customer_id"])),
               "totalLineItemsPriceSet": _money(row["amount"]), "totalPriceSet": _money(row["amount"]),
               "lineItems": [line]}
        return self._stamp(obj, number, "AbandonedCheckout", updated, self.at(row["created_at"]))

    def node(self, gid: str) -> dict[str, Any] | None:
        m = re.match(r"^gid://shopify/([A-Za-z]+)/(\d+)$", gid or "")
        if not m:
            return None
        table = {"Customer": self.customers, "Order": self.orders, "ProductVariant": self.variants,
                 "AbandonedCheckout": self.checkouts}.get(m.group(1))
        return table.get(int(m.group(2))) if table is not None else None


# -- search ---------------------------------------------------------------------------------------

_TERM = re.compile(r"^(?P<field>[A-Za-z_]+):(?P<op><=|>=|<|>|=)?(?P<value>'[^']*'|\"[^\"]*\"|\S+)$")
_WORD = re.compile(r"(?:[^\s'\"]+|'[^']*'|\"[^\"]*\")+")


def search_filter(text: str | None, zone: ZoneInfo) -> tuple[list[Any], list[dict[str, str]]]:
    """Predicates on an object for Shopify's search syntax (the subset above), and the warnings."""
    predicates, warnings = [], []
    for word in _WORD.findall(text or ""):
        if word.upper() == "AND":
            continue
        if word.upper() in ("OR", "NOT") or word.startswith("-"):
            warnings.append({"field": word, "message": "The loopback twin supports terms joined by AND only."})
            continue
        m = _TERM.match(word)
        if not m or m.group("field") not in ("updated_at", "created_at"):
            warnings.append({"field": m.group("field") if m else word,
                             "message": "Invalid search field for this query."})
            continue
        raw = m.group("value").strip("'\"")
        try:
            value = datetime.fromisoformat(raw)
        except ValueError:
            warnings.append({"field": m.group("field"), "message": f"Invalid date: {raw}"})
            continue
        if value.tzinfo is None:
            value = value.replace(tzinfo=zone)
        key, op = "_updated" if m.group("field") == "updated_at" else "_created", m.group("op") or "="
        predicates.append((key, op, value))
    return predicates, warnings


def _matches(obj: dict[str, Any], predicates: list[Any]) -> bool:
    for key, op, value in predicates:
        at = obj[key]
        if not {"<": at < value, "<=": at <= value, ">": at > value, ">=": at >= value, "=": at == value}[op]:
            return False
    return True


# -- bulk operations -----------------------------------------------------------------------------


@dataclass
class BulkOperation:
    number: int
    query: str
    created_at: datetime
    path: Path | None = None
    status: str = "CREATED"
    polls: int = 0
    fail: str | None = None  # errorCode to end with
    object_count: int = 0
    root_count: int = 0
    signature: str = ""
    completed_at: datetime | None = None

    @property
    def gid(self) -> str:
        return _gid("BulkOperation", self.number)


def _bulk_problems(op: gql.Operation) -> list[str]:
    if op.kind != "query":
        return ["Bulk queries must be queries, not mutations."]
    if op.variables:
        return ["Bulk queries cannot contain variables."]
    if len(op.selections) != 1 or not isinstance(op.selections[0], gql.Field):
        return ["Bulk queries must have exactly one top-level field."]
    root = op.selections[0]
    fdef = SCHEMA.types[SCHEMA.query].get(root.name)
    if fdef is None or SCHEMA.kind(gql.named(fdef.type)) != "connection":
        return ["Bulk queries must contain at least one connection, at the top level."]
    problems, count = [], 0

    def walk(field: gql.Field, type_name: str, depth: int) -> None:
        nonlocal count
        node_type = type_name[: -len("Connection")]
        node_sel = _node_selection(field)
        nested = []
        for sel in node_sel:
            if isinstance(sel, gql.Field):
                sub = SCHEMA.types[node_type].get(sel.name)
                if sub is not None and SCHEMA.kind(gql.named(sub.type)) == "connection":
                    nested.append((sel, gql.named(sub.type)))
        count += 1
        if nested and not any(isinstance(s, gql.Field) and s.name == "id" for s in node_sel):
            problems.append(f"The node of '{field.name}' must select 'id': its nested connection lines refer to it.")
        for sel, target in nested:
            if depth >= 2:
                problems.append("Bulk queries cannot contain connections nested more than 2 levels deep.")
                continue
            walk(sel, target, depth + 1)

    walk(root, gql.named(fdef.type), 1)
    if count > MAX_BULK_CONNECTIONS:
        problems.append(f"Bulk queries cannot contain more than {MAX_BULK_CONNECTIONS} connections.")
    return problems


def _node_selection(field: gql.Field) -> list[Any]:
    for sel in field.selections or []:
        if isinstance(sel, gql.Field) and sel.name == "nodes":
            return sel.selections or []
        if isinstance(sel, gql.Field) and sel.name == "edges":
            for e in sel.selections or []:
                if isinstance(e, gql.Field) and e.name == "node":
                    return e.selections or []
    return []


def _bulk_lines(op: gql.Operation, data: dict[str, Any]) -> tuple[list[str], int]:
    """The JSONL lines of a bulk query's result: every node on its own line, nested connection
    nodes after their parent with `__parentId`. Returns the lines and the count of root nodes."""
    lines: list[str] = []
    root = op.selections[0]

    def nodes_of(value: dict[str, Any], field: gql.Field) -> list[dict[str, Any]]:
        for sel in field.selections or []:
            if isinstance(sel, gql.Field) and sel.name == "nodes":
                return value.get(sel.key) or []
            if isinstance(sel, gql.Field) and sel.name == "edges":
                node_key = next((e.key for e in sel.selections or [] if isinstance(e, gql.Field) and e.name == "node"),
                                "node")
                return [edge.get(node_key) for edge in value.get(sel.key) or []]
        return []

    def emit(field: gql.Field, type_name: str, value: dict[str, Any], parent: str | None) -> None:
        node_type = type_name[: -len("Connection")]
        nested = [(sel, gql.named(SCHEMA.types[node_type][sel.name].type)) for sel in _node_selection(field)
                  if isinstance(sel, gql.Field) and sel.name in SCHEMA.types[node_type]
                  and SCHEMA.kind(gql.named(SCHEMA.types[node_type][sel.name].type)) == "connection"]
        for node in nodes_of(value, field):
            children = {sel.key: node.pop(sel.key, None) for sel, _ in nested}
            if parent is not None:
                node["__parentId"] = parent
            lines.append(json.dumps(node, ensure_ascii=False))
            for sel, target in nested:
                if children[sel.key] is not None:
                    emit(sel, target, children[sel.key], node.get("id"))

    fdef = SCHEMA.types[SCHEMA.query][root.name]
    value = data.get(root.key) or {}
    emit(root, gql.named(fdef.type), value, None)
    return lines, len(nodes_of(data.get(root.key) or {}, root))


# -- the server -----------------------------------------------------------------------------------


class ShopifyLoopback(LoopbackServer):
    """The twin of one shop. `exports`: a folder of kizuna's nightly exports (`kizuna generate`);
    `night_index`: the night shown first (0, the full history; -1, the last night); `token`: the
    access token it accepts; `restore_rate`, `bucket_size`: its cost bucket; `throttle_share`:
    the share of requests answered THROTTLED whatever the bucket holds (with `seed`: repeatable);
    `bulk_concurrency`: bulk operations running at once (5 from API version 2026-01). The base
    class's options (`fault_rate`, queued `Fault`s through `fail_next`/`fail_requests`) play HTTP
    faults before the API answers."""

    provider = "shopify"
    delivery_key = "request"

    def __init__(self, exports: Path, *, token: str = DEFAULT_TOKEN, shop: str = "kizuna-demo.myshopify.com",
                 api_version: str = API_VERSION, timezone_name: str = "Asia/Tokyo", night_index: int = 0,
                 bucket_size: float = 1000.0, restore_rate: float = 50.0, throttle_share: float = 0.0,
                 bulk_concurrency: int = 5, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not 0.0 <= throttle_share <= 1.0:
            raise ValueError(f"throttle_share is a probability between 0 and 1, not {throttle_share}")
        self.exports = Path(exports)
        self.folders = sorted(p for p in self.exports.iterdir() if p.is_dir() and _NIGHT.match(p.name))
        if not self.folders:
            raise ValueError(f"{self.exports} holds no night folder (YYYY-MM-DD) of kizuna's export format")
        self.token, self.shop, self.api_version = token, shop, api_version
        self.zone = ZoneInfo(timezone_name)
        self.bucket_size, self.restore_rate, self.throttle_share = bucket_size, restore_rate, throttle_share
        self.bulk_concurrency = bulk_concurrency
        self._available, self._bucket_at = bucket_size, time.monotonic()
        self._throttle_rng = random.Random(kwargs.get("seed"))
        self._state = threading.RLock()
        self.rows: dict[str, dict[tuple, dict[str, str]]] = {}
        self.media_types: dict[str, str] = {}
        self.night_index = -1
        self.view: ShopView | None = None
        self.bulk_ops: dict[int, BulkOperation] = {}
        self._bulk_failures: list[str] = []
        self._bulk_dir = Path(tempfile.mkdtemp(prefix="kizuna-shopify-bulk-"))
        self.throttled = 0  # THROTTLED answers given
        self.graphql_requests = 0
        self.token_leaks = 0  # bulk downloads that carried the access token
        self.queries: list[str] = []  # operation names (or the first field) of the GraphQL requests answered
        self.discounts: dict[str, dict[str, Any]] = {}  # upper-cased code -> the code discount created
        first = night_index + len(self.folders) if night_index < 0 else night_index  # -1: the last night
        if not 0 <= first < len(self.folders):
            raise ValueError(f"night_index {night_index}: {self.exports} holds {len(self.folders)} night folder(s)")
        for _ in range(first + 1):
            self.next_night()

    @classmethod
    def from_exports(cls, folder: Path, **kwargs: Any) -> "ShopifyLoopback":
        """A twin of the shop whose nightly exports (kizuna's format) are in `folder`, showing its first night."""
        return cls(folder, **kwargs)

    # -- the shop over time ---------------------------------------------------------------

    @property
    def night(self) -> date:
        return date.fromisoformat(self.folders[self.night_index].name)

    @property
    def has_next_night(self) -> bool:
        return self.night_index + 1 < len(self.folders)

    def next_night(self) -> date:
        """Show the next night's changes (its folder merged over what the shop holds)."""
        with self._state:
            if not self.has_next_night:
                raise ValueError(f"no night after {self.folders[self.night_index].name} in {self.exports}")
            self.night_index += 1
            self._merge(self.folders[self.night_index])
            self._rebuild()
            return self.night

    def clock(self) -> datetime:
        """The shop's time (UTC): 02:00 the morning after the night shown, plus any `advance`."""
        end = datetime.combine(self.night + timedelta(days=1), clock_time(2), tzinfo=self.zone)
        return end.astimezone(timezone.utc) + timedelta(seconds=self.clock_offset)

    def now(self) -> float:
        return self.clock().timestamp()

    def edit(self, table: str, key: str | tuple, updated_at: str, **changes: str) -> None:
        """Change a row as the merchant would (a new version at `updated_at`, shop time)."""
        with self._state:
            key = key if isinstance(key, tuple) else (key,)
            row = self.rows[table][key]
            row.update({k: str(v) for k, v in changes.items()}, updated_at=updated_at)
            self._rebuild()

    def _merge(self, folder: Path) -> None:
        for path in sorted(folder.glob("*.csv")):
            spec = EXPORT_FILES_BY_TABLE.get(path.stem)
            if spec is None:
                continue
            table = self.rows.setdefault(spec.table, {})
            with path.open(encoding=_encoding(path), newline="") as fh:
                for row in csv.DictReader(fh):
                    key = tuple(row[k] for k in spec.primary_key)
                    old = table.get(key)
                    if old is None or row["updated_at"] >= old["updated_at"]:
                        table[key] = row
        self.media_types = {r["media_code"]: r["media_type"] for r in self.rows.get("media", {}).values()}

    def _rebuild(self) -> None:
        self.view = ShopView(self.rows, self.zone, self.shop, self.media_types)

    # -- faults ---------------------------------------------------------------------------

    def fail_next_bulk(self, error_code: str = "INTERNAL_SERVER_ERROR", count: int = 1) -> None:
        """The next `count` bulk operations end FAILED with `error_code`."""
        with self._state:
            self._bulk_failures.extend([error_code] * count)

    def fail_requests(self, count: int, status: int = 502, after: int = 0) -> None:
        """After `after` more requests answered normally, answer the next `count` with HTTP `status`."""
        from connectors.channels.loopback.server import Fault

        self.fail_next(*([Fault()] * after), *([Fault.error(status)] * count))

    def stop(self) -> None:
        super().stop()
        shutil.rmtree(self._bulk_dir, ignore_errors=True)

    def start(self) -> "ShopifyLoopback":
        super().start()
        server = self
        handler = self._httpd.RequestHandlerClass  # type: ignore[union-attr]
        # The Date header tells the shop's clock (the source decides from it which nights are over).
        handler.date_time_string = lambda _self, timestamp=None: email.utils.formatdate(
            server.now() if timestamp is None else timestamp, usegmt=True)
        return self

    # -- HTTP -----------------------------------------------------------------------------

    def handle(self, method: str, path: str, headers: Any, body: bytes) -> Reply:
        parts = urlsplit(path)
        if parts.path.startswith("/bulk-results/") and method == "GET":
            return self._download(parts, headers)
        m = re.match(r"^/admin/api/([^/]+)/graphql\.json$", parts.path)
        if not m:
            return Reply(404, {"errors": "Not Found"})
        if m.group(1) != self.api_version:
            return Reply(404, {"errors": f"Not Found (this twin serves API version {self.api_version} only)"})
        if method != "POST":
            return Reply(405, {"errors": "Method Not Allowed"})
        if headers.get("X-Shopify-Access-Token") != self.token:
            return Reply(401, {"errors": "[API] Invalid API key or access token (unrecognized login or wrong "
                                         "password)"})
        try:
            payload = json.loads(body or b"{}")
            query, variables = payload.get("query"), payload.get("variables") or {}
            if not isinstance(variables, dict):
                raise ValueError
        except (ValueError, AttributeError):
            return Reply(400, {"errors": [{"message": "Invalid JSON in request body"}]})
        with self._state:
            self.graphql_requests += 1
            return Reply(200, self._graphql(query, variables))

    def _graphql(self, query: Any, variables: dict[str, Any]) -> dict[str, Any]:
        try:
            op = gql.parse(query)
        except GraphQLError as exc:
            return {"errors": [exc.as_dict()]}
        errors = gql.validate(op, SCHEMA, variables)
        if errors:
            return {"errors": [e.as_dict() for e in errors]}
        self.queries.append(op.name or (op.selections[0].name if isinstance(op.selections[0], gql.Field) else "?"))
        requested = gql.requested_cost(op, SCHEMA, variables)
        if requested > MAX_QUERY_COST:
            return {"errors": [{"message": f"Query cost is {requested}, which exceeds the single query max cost "
                                           f"limit ({MAX_QUERY_COST}).",
                                "extensions": {"code": "MAX_COST_EXCEEDED", "cost": requested,
                                               "maxCost": MAX_QUERY_COST}}],
                    "extensions": {"cost": self._cost(requested, None)}}
        self._refill()
        forced = self.throttle_share and self._throttle_rng.random() < self.throttle_share
        if forced:  # another app of the shop spent the budget
            self._available = min(self._available, requested * self._throttle_rng.uniform(0.0, 0.8))
        if forced or requested > self._available:
            self.throttled += 1
            return {"errors": [{"message": "Throttled", "extensions": {
                "code": "THROTTLED", "documentation": "https://shopify.dev/api/usage/rate-limits"}}],
                "extensions": {"cost": self._cost(requested, None)}}
        self._available -= requested
        search: list[dict[str, Any]] = []
        try:
            data = gql.Executor(SCHEMA, self._root(search)).run(op, variables)
        except GraphQLError as exc:
            self._available = min(self.bucket_size, self._available + requested)
            return {"errors": [exc.as_dict()], "extensions": {"cost": self._cost(requested, 0)}}
        actual = min(requested, gql.actual_cost(op, SCHEMA, data))
        self._available = min(self.bucket_size, self._available + requested - actual)
        extensions: dict[str, Any] = {"cost": self._cost(requested, actual)}
        if search:
            extensions["search"] = search
        return {"data": data, "extensions": extensions}

    def _refill(self) -> None:
        now = time.monotonic()
        self._available = min(self.bucket_size, self._available + (now - self._bucket_at) * self.restore_rate)
        self._bucket_at = now

    def _cost(self, requested: int, actual: int | None) -> dict[str, Any]:
        return {"requestedQueryCost": requested, "actualQueryCost": actual,
                "throttleStatus": {"maximumAvailable": self.bucket_size,
                                   "currentlyAvailable": round(self._available, 1),
                                   "restoreRate": self.restore_rate}}

    def _root(self, search: list[dict[str, Any]]) -> dict[str, Any]:
        view = self.view
        assert view is not None

        def listing(name: str):
            def provide(args: dict[str, Any]) -> list[dict[str, Any]]:
                predicates, warnings = search_filter(args.get("query"), self.zone)
                if warnings:
                    search.append({"path": [name], "query": args.get("query"), "warnings": warnings})
                items = view.lists[name]
                return [i for i in items if _matches(i, predicates)] if predicates else items
            return provide

        def node(args: dict[str, Any]) -> dict[str, Any] | None:
            gid = args.get("id") or ""
            m = re.match(r"^gid://shopify/BulkOperation/(\d+)$", gid)
            if m:
                op = self.bulk_ops.get(int(m.group(1)))
                return self._bulk_view(op) if op else None
            return view.node(gid)

        return {
            "shop": {"__typename": "Shop", "name": "Kizuna Loopback", "myshopifyDomain": self.shop,
                     "ianaTimezone": self.zone.key, "currencyCode": "JPY"},
            "customers": listing("customers"), "orders": listing("orders"),
            "productVariants": listing("productVariants"), "abandonedCheckouts": listing("abandonedCheckouts"),
            "node": node, "bulkOperationRunQuery": self._run_bulk,
            "discountCodeBasicCreate": self._create_discount,
        }

    # -- code discounts -------------------------------------------------------------------

    def _create_discount(self, args: dict[str, Any]) -> dict[str, Any]:
        """discountCodeBasicCreate: checks what Shopify checks (a code, a title, a start, a value, buyers
        who exist, a code no other discount has) and keeps the discount in `discounts`."""
        data = args["basicCodeDiscount"]
        code = (data.get("code") or "").strip()
        errors = []

        def error(field: str, message: str, code_: str) -> None:
            errors.append({"field": ["basicCodeDiscount", field], "message": message, "code": code_,
                           "extraInfo": None})

        if not code:
            error("code", "Code can't be blank", "BLANK")
        elif len(code) > 255:
            error("code", "Code is too long (maximum is 255 characters)", "TOO_LONG")
        elif code.upper() in self.discounts:
            error("code", "Code must be unique. Please try a different code.", "TAKEN")
        if not (data.get("title") or "").strip():
            error("title", "Title can't be blank", "BLANK")
        if not data.get("startsAt"):
            error("startsAt", "Starts at can't be blank", "BLANK")
        elif data.get("endsAt") and data["endsAt"] <= data["startsAt"]:
            error("endsAt", "Ends at needs to be after starts_at", "INVALID")
        if data.get("usageLimit") is not None and data["usageLimit"] < 1:
            error("usageLimit", "Usage limit must be greater than 0", "GREATER_THAN")
        value = (data.get("customerGets") or {}).get("value") or {}
        if len([k for k in value if value[k] is not None]) != 1:
            error("customerGets", "Value must be exactly one of percentage or discountAmount", "INVALID")
        elif value.get("percentage") is not None and not 0 < value["percentage"] <= 1:
            error("customerGets", "Percentage must be between 0 and 1", "INVALID")
        context = data.get("context") or {}
        buyers = (context.get("customers") or {}).get("add") or []
        if not context:
            error("context", "Context can't be blank", "BLANK")
        for gid in buyers:
            assert self.view is not None
            if self.view.node(gid) is None or not gid.startswith("gid://shopify/Customer/"):
                error("context", f"Customer {gid} does not exist", "INVALID")
        if errors:
            return {"codeDiscountNode": None, "userErrors": errors}
        number = len(self.discounts) + 1
        node = {"__typename": "DiscountCodeNode", "id": f"gid://shopify/DiscountCodeNode/{number}"}
        self.discounts[code.upper()] = {**data, "id": node["id"], "created_at": ShopView.iso(self.clock())}
        return {"codeDiscountNode": node, "userErrors": []}

    # -- bulk operations ------------------------------------------------------------------

    def _run_bulk(self, args: dict[str, Any]) -> dict[str, Any]:
        def refused(message: str) -> dict[str, Any]:
            return {"bulkOperation": None, "userErrors": [{"field": ["query"], "message": message, "code": None}]}

        running = [op for op in self.bulk_ops.values() if op.status in ("CREATED", "RUNNING")]
        if len(running) >= self.bulk_concurrency:
            return refused(f"A bulk query operation for this app and shop is already in progress: "
                           f"{running[0].gid}.")
        try:
            inner = gql.parse(args["query"])
        except GraphQLError as exc:
            return refused(exc.message)
        problems = [e.message for e in gql.validate(inner, SCHEMA, {}, bulk=True)] or _bulk_problems(inner)
        if problems:
            return refused("; ".join(problems))
        search: list[dict[str, Any]] = []
        data = gql.Executor(SCHEMA, self._root(search), bulk=True).run(inner, {})
        if search:
            return refused("Invalid search: " + "; ".join(w["message"] for s in search for w in s["warnings"]))
        lines, roots = _bulk_lines(inner, data)
        number = len(self.bulk_ops) + 1
        op = BulkOperation(number, args["query"], self.clock(), object_count=len(lines), root_count=roots,
                           signature=secrets.token_urlsafe(16))
        if self._bulk_failures:
            op.fail = self._bulk_failures.pop(0)
        if lines:
            op.path = self._bulk_dir / f"{number}.jsonl"
            op.path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
        self.bulk_ops[number] = op
        return {"bulkOperation": self._bulk_view(op, advance=False), "userErrors": []}

    def _bulk_view(self, op: BulkOperation, advance: bool = True) -> dict[str, Any]:
        if advance and op.status in ("CREATED", "RUNNING"):  # the operation moves on as it is polled
            op.polls += 1
            if op.status == "CREATED":
                op.status = "RUNNING"
            else:
                op.status = "FAILED" if op.fail else "COMPLETED"
                op.completed_at = self.clock()
        done = op.status == "COMPLETED"
        url = f"{self.url}/bulk-results/{op.number}.jsonl?sig={op.signature}" if done and op.path else None
        return {"__typename": "BulkOperation", "_id": op.number, "id": op.gid, "status": op.status,
                "errorCode": op.fail if op.status == "FAILED" else None,
                "createdAt": ShopView.iso(op.created_at), "completedAt": ShopView.iso(op.completed_at),
                "objectCount": str(op.object_count if done else 0),
                "rootObjectCount": str(op.root_count if done else 0),
                "fileSize": str(op.path.stat().st_size) if done and op.path else None, "url": url,
                "partialDataUrl": None, "query": op.query, "type": "QUERY"}

    def _download(self, parts: Any, headers: Any) -> Reply:
        m = re.match(r"^/bulk-results/(\d+)\.jsonl$", parts.path)
        op = self.bulk_ops.get(int(m.group(1))) if m else None
        signature = (parse_qs(parts.query).get("sig") or [""])[0]
        if headers.get("X-Shopify-Access-Token"):
            with self._state:
                self.token_leaks += 1
        if op is None or op.path is None or op.status != "COMPLETED" or not secrets.compare_digest(
                signature, op.signature):
            return Reply(403, {"error": "AccessDenied: the signature does not match"})
        return Reply(200, op.path.read_bytes())

    # -- another process ------------------------------------------------------------------

    def _control(self, method: str, path: str, body: bytes) -> Reply:
        name = path.split("?")[0][len("/_loopback/"):].strip("/")
        if method == "POST" and name == "next-night":
            try:
                return Reply(200, {"night": self.next_night().isoformat()})
            except ValueError as exc:
                return Reply(409, {"message": str(exc)})
        if method == "POST" and name == "fail-bulk":
            data = json.loads(body or b"{}")
            self.fail_next_bulk(data.get("error_code", "INTERNAL_SERVER_ERROR"), int(data.get("count", 1)))
            return Reply(200, {"queued": int(data.get("count", 1))})
        if method == "GET" and name == "shop":
            return Reply(200, {"night": self.night.isoformat(), "clock": ShopView.iso(self.clock()),
                               "has_next_night": self.has_next_night, "throttled": self.throttled,
                               "graphql_requests": self.graphql_requests, "token_leaks": self.token_leaks})
        return super()._control(method, path, body)
