"""What the Shopify source asks the Admin GraphQL API, in its two forms.

Each resource is one top-level connection with the fields kizuna maps (`mapping.py`) and
at most one nested connection (an order's line items, a checkout's line items). The same
field selections make

* the **bulk query** of the first load (`bulkOperationRunQuery`): connections without
  `first`, Shopify walks them all and writes every node as one JSONL line, a nested
  connection's nodes as lines of their own carrying `__parentId`;
* the **page query** of later nights: `first`/`after` pagination with `pageInfo`, the
  nested connection's first page inline (`CHILD_PAGE` nodes), more fetched through
  `node(id:)` when its `pageInfo.hasNextPage` says so.

Page sizes keep a page's requested cost (Shopify's calculated query cost: objects 1,
connections 2 + first x node) under the 1,000-point ceiling of a single query; the client
halves a page when Shopify answers MAX_COST_EXCEEDED anyway.
"""

from __future__ import annotations

from dataclasses import dataclass

#: The one Admin API version every request names (`/admin/api/<version>/graphql.json`). 2026-10 is
#: the newest stable version (released 2026-10-01), so Shopify serves it until at least October 2027
#: (each stable version for 12 months or more); every field read here exists in it. Customer.email,
#: .phone, .emailMarketingConsent and .smsMarketingConsent are deprecated there in favour of
#: defaultEmailAddress / defaultPhoneNumber: move to those when pinning a later version.
API_VERSION = "2026-10"

#: Fulfilments read per order (a list, not a connection: no further pages). More are reported.
FULFILLMENTS_PER_ORDER = 5
#: Nodes of a nested connection read with their parent's page; more come through `node(id:)`.
CHILD_PAGE = 10

CUSTOMER = """id firstName lastName email phone createdAt updatedAt
defaultAddress { zip provinceCode province city address1 address2 }
emailMarketingConsent { marketingState consentUpdatedAt }
smsMarketingConsent { marketingState consentUpdatedAt }"""

ORDER = f"""id createdAt processedAt updatedAt cancelledAt displayFinancialStatus
customer {{ id }}
discountCodes
subtotalPriceSet {{ shopMoney {{ amount currencyCode }} }}
totalDiscountsSet {{ shopMoney {{ amount currencyCode }} }}
totalShippingPriceSet {{ shopMoney {{ amount currencyCode }} }}
totalPriceSet {{ shopMoney {{ amount currencyCode }} }}
paymentGatewayNames
customerJourneySummary {{ firstVisit {{ landingPage utmParameters {{ source campaign }} }} }}
fulfillments(first: {FULFILLMENTS_PER_ORDER}) {{
  id createdAt updatedAt deliveredAt trackingInfo(first: 1) {{ company number }}
}}"""

LINE_ITEM = """id quantity variant { id }
originalUnitPriceSet { shopMoney { amount } }
originalTotalSet { shopMoney { amount } }
sellingPlan { sellingPlanId }"""

VARIANT = """id sku title price updatedAt
sellingPlanGroupsCount { count }
inventoryItem { updatedAt unitCost { amount } }
product { id title productType updatedAt }"""

CHECKOUT = """id createdAt updatedAt completedAt
customer { id }
totalLineItemsPriceSet { shopMoney { amount } }"""

CHECKOUT_LINE = """id quantity variant { id }"""


@dataclass(frozen=True)
class Child:
    field: str  # the nested connection, e.g. lineItems
    fields: str
    parent_type: str  # the parent's GraphQL type, for node(id:) follow-ups


@dataclass(frozen=True)
class Resource:
    name: str
    root: str  # the top-level connection
    fields: str
    page_size: int
    #: Shopify filters it by `updated_at` (the catalogue is read whole and filtered here: a variant's
    #: price, its product's type and its inventory item's cost change apart, each with its own time).
    filtered: bool = True
    child: Child | None = None

    def bulk_query(self, search: str | None) -> str:
        args = f'(query: "{_escape(search)}")' if search else ""
        nested = f" {self.child.field} {{ edges {{ node {{ {self.child.fields} }} }} }}" if self.child else ""
        return f"{{ {self.root}{args} {{ edges {{ node {{ {self.fields}{nested} }} }} }} }}"

    def page_query(self) -> str:
        nested = ""
        if self.child:
            nested = (f" {self.child.field}(first: {CHILD_PAGE}) {{ pageInfo {{ hasNextPage endCursor }} "
                      f"edges {{ node {{ {self.child.fields} }} }} }}")
        query_var, query_arg = (", $query: String", ", query: $query") if self.filtered else ("", "")
        return (f"query {self.name.title().replace('_', '')}Page($first: Int!, $after: String{query_var}) {{ "
                f"{self.root}(first: $first, after: $after{query_arg}) {{ pageInfo {{ hasNextPage endCursor }} "
                f"edges {{ node {{ {self.fields}{nested} }} }} }} }}")

    def child_query(self) -> str:
        assert self.child is not None
        c = self.child
        return (f"query More{c.field[0].upper()}{c.field[1:]}($id: ID!, $first: Int!, $after: String) {{ "
                f"node(id: $id) {{ ... on {c.parent_type} {{ {c.field}(first: $first, after: $after) {{ "
                f"pageInfo {{ hasNextPage endCursor }} edges {{ node {{ {c.fields} }} }} }} }} }} }}")


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


RESOURCES: tuple[Resource, ...] = (
    Resource("customers", "customers", CUSTOMER, page_size=150),
    Resource("orders", "orders", ORDER, page_size=8, child=Child("lineItems", LINE_ITEM, "Order")),
    Resource("variants", "productVariants", VARIANT, page_size=150, filtered=False),
    Resource("checkouts", "abandonedCheckouts", CHECKOUT, page_size=35,
             child=Child("lineItems", CHECKOUT_LINE, "AbandonedCheckout")),
)

SHOP = "query Shop { shop { ianaTimezone currencyCode } }"

RUN_BULK = """mutation RunBulkQuery($query: String!) {
  bulkOperationRunQuery(query: $query) { bulkOperation { id status } userErrors { field message } }
}"""

BULK_STATUS = """query BulkOperationStatus($id: ID!) {
  node(id: $id) { ... on BulkOperation { id status errorCode objectCount url partialDataUrl } }
}"""


def window_search(start_utc: str | None, end_utc: str) -> str:
    """Shopify search syntax for `updated_at` in (start, end]."""
    end = f"updated_at:<='{end_utc}'"
    return f"updated_at:>'{start_utc}' AND {end}" if start_utc else end
