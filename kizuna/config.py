"""The one configuration object: environment variables `KIZUNA_*` with sensible defaults.

Every path defaults to a place inside the work tree (`data/` beside the code), so a
fresh clone runs without any set-up and writes nothing elsewhere.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

#: The work tree: the folder that holds `kizuna/`, `flows/`, `dbt_project/`, ...
PROJECT_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    """Kizuna's settings. Each field `x` is read from the environment as `KIZUNA_X`."""

    model_config = SettingsConfigDict(env_prefix="KIZUNA_", extra="ignore")

    home: Path = Field(PROJECT_ROOT, description="Work tree; other paths default below it.")
    data_dir: Path | None = Field(None, description="Where data lives (default: <home>/data).")
    exports_dir: Path | None = Field(
        None, description="Incoming nightly exports, one folder per night (default: <data_dir>/exports)."
    )
    archive_dir: Path | None = Field(
        None, description="Copies of every export file loaded, kept as received (default: <data_dir>/archive)."
    )
    warehouse: Path | None = Field(None, description="The DuckDB warehouse file (default: <data_dir>/warehouse.duckdb).")
    warehouse_wait_seconds: float = Field(
        300, ge=0, description="When another process (a notebook, a BI client) holds the warehouse open, a stage "
        "waits this long for it before it stops.")
    duckdb_memory_limit: str = Field("1500MB", description="DuckDB's memory cap for loading and for dbt (DuckDB's "
                                     "own default is 80% of RAM); beyond it DuckDB spills to disk.")
    ledger: Path | None = Field(
        None, description="The send ledger, its own DuckDB file so that no rebuild can lose it "
        "(default: <data_dir>/ledger.duckdb)."
    )
    outbox_dir: Path | None = Field(None, description="Local outbox channel's folder (default: <data_dir>/outbox).")
    reports_dir: Path | None = Field(None, description="Nightly reports (default: <data_dir>/reports).")
    dbt_project_dir: Path | None = Field(None, description="The dbt project (default: <home>/dbt_project).")

    source: Literal["csv", "mapped_csv", "shopify", "ec_cube"] = Field(
        "csv", description="Where the shop's data comes from (docs/sources.md): `csv` (kizuna's export format in "
        "KIZUNA_EXPORTS_DIR), `mapped_csv` (the cart's own CSV exports there, read through KIZUNA_SOURCE_MAPPING), "
        "`shopify` (the Admin GraphQL API of KIZUNA_SHOPIFY_SHOP), `ec_cube` (an EC-CUBE 4 database, "
        "KIZUNA_EC_CUBE_DATABASE_URL).")
    landing_dir: Path | None = Field(
        None, description="Where sources other than `csv` write each night's data in kizuna's export format before "
        "it is loaded (default: <data_dir>/landing).")
    source_mapping: Path | None = Field(
        None, description="`mapped_csv`: the YAML mapping from the cart's export to kizuna's tables (default: the "
        "shipped mapping for EC-CUBE 4's standard CSV exports).")
    shopify_shop: str = Field("", description="`shopify`: the shop's domain, e.g. `kizuna-demo.myshopify.com`.")
    shopify_api_url: str | None = Field(
        None, description="`shopify`: the Admin API base URL (default https://<shop>; tests and the demo: the "
        "loopback twin).")
    source_encoding: Literal["auto", "utf-8", "cp932"] = Field(
        "auto", description="Encoding of the CSV exports; `auto` tries UTF-8, then CP932 (Shift_JIS)."
    )
    timezone: str = Field("Asia/Tokyo", description="The shop's time zone: nights and send dates are in it.")
    quality_config: Path | None = Field(
        None, description="YAML overrides of the data-quality checks' severities and thresholds, merged over "
        "kizuna/quality/checks.yaml (env KIZUNA_QUALITY_CONFIG)."
    )

    # Demo shop.
    demo_customers: int = Field(3000, ge=100, description="Customers in the demo shop.")
    demo_seed: int = Field(20261122, description="Seed of the demo shop generator.")
    demo_nights: int = Field(3, ge=1, description="Nights exported one folder each after the full history.")

    # Campaigns.
    catch_up_days: int = Field(
        3, ge=0, description="A step that fell due up to this many days ago still goes out once; older ones are skipped."
    )
    sender_name: str = Field("絆オーガニクス株式会社 (Kizuna Organics K.K.)", description="Sender named in every marketing e-mail.")
    sender_address: str = Field("〒150-0001 東京都渋谷区神宮前1-2-3", description="Sender's postal address (legal footer).")
    sender_contact: str = Field("support@kizuna-organics.example / 0120-000-000", description="Sender's contact (legal footer).")
    sender_email: str = Field("info@kizuna-organics.example", description="From address of marketing e-mail.")
    unsubscribe_base_url: str = Field(
        "https://kizuna-organics.example/unsubscribe", description="Unsubscribe link; a per-recipient token is appended."
    )
    # Sender identity and unsubscribe (issue 16: a real sender, one-click unsubscribe; docs/unsubscribe.md).
    # The sender_* and unsubscribe_base_url defaults above are the demo shop's: with any network provider
    # (sendgrid, line, twilio) the run refuses to send while one of them is empty or still the demo's.
    unsubscribe_mailto: str = Field(
        "", description="Address of the `mailto:` in the List-Unsubscribe header (default: KIZUNA_SENDER_EMAIL); "
        "mail arriving there must be handled by a person.")
    unsubscribe_token_days: int = Field(
        60, ge=1, le=3650, description="Days an unsubscribe link stays valid after the send; an older link shows "
        "a page with the contact to ask instead (the newest message always carries a fresh one).")
    campaign_cap_days: int = Field(7, ge=1, description="Frequency cap window: at most N messages per channel in this many days.")
    campaign_caps: dict[str, int] = Field(
        {"email": 3, "line": 2, "sms": 1, "dm": 2, "phone": 1},
        description="Frequency cap per channel (messages per KIZUNA_CAMPAIGN_CAP_DAYS, JSON); a channel not listed "
        "(e.g. the package insert) is not capped.",
    )
    campaign_holdout_percent: float = Field(
        0, ge=0, le=50, description="Default share of each scenario's customers held out as control group."
    )

    # Brand and templates (issue 16: HTML e-mail, tagged links, templates marketers write).
    # One place for how the shop looks in its e-mails; templates see these as `brand` and `links`.
    brand_shop_name: str = Field("絆オーガニクス", description="The shop's name as customers know it (e-mail "
                                 "header, logo alt text); the legal sender is KIZUNA_SENDER_NAME.")
    brand_shop_url: str = Field("https://kizuna-organics.example", description="The shop's home page: the logo "
                                "and `links.shop` point there (tagged with UTM parameters).")
    brand_logo_url: str = Field("https://kizuna-organics.example/images/logo.png", description="The logo at the top "
                                "of every e-mail: an HTTPS URL of a PNG or JPEG, about 320 px wide (shown 160 px); empty: the shop's name "
                                "in text.")
    brand_primary_color: str = Field("#2f6b4f", pattern=r"^#[0-9a-fA-F]{6}$", description="Buttons and headings "
                                     "(#rrggbb).")
    brand_accent_color: str = Field("#c8553d", pattern=r"^#[0-9a-fA-F]{6}$", description="Offer and coupon boxes "
                                    "(#rrggbb).")
    brand_product_image_url: str = Field("https://kizuna-organics.example/images/product.jpg", description="The "
                                         "product picture in e-mails: an HTTPS URL, about 1100 px wide (shown 550 px); empty: no picture.")
    brand_product_name: str = Field("オーガニック酵素サプリ", description="The product's name (image alt text, "
                                    "templates: `brand.product_name`).")
    brand_product_url: str = Field("{shop_url}/products/main", description="`links.product`: the product page; "
                                   "`{shop_url}` is KIZUNA_BRAND_SHOP_URL.")
    brand_cart_url: str = Field("{shop_url}/cart", description="`links.cart`: where a customer finds their cart; "
                                "`{shop_url}` is KIZUNA_BRAND_SHOP_URL, `{customer_id}` the customer's id.")
    scenarios_dir: Path | None = Field(
        None, description="The shop's own scenario folder: its *.yaml scenarios run instead of the shipped ones, "
        "and its `templates/` folder is searched before the shipped templates (a template of the same name "
        "replaces the shipped one; the others stay usable). Default: the scenarios shipped in campaigns/.")

    # Channels (connectors/channels/registry.py). Every default is local: the demo needs no secrets.
    # Secrets (API keys, tokens) are NOT settings: kizuna/secrets.py resolves them.
    email_provider: Literal["outbox", "sendgrid"] = Field("outbox", description="E-mail: local outbox or SendGrid.")
    line_provider: Literal["outbox", "line"] = Field("outbox", description="LINE: local outbox or the Messaging API.")
    sms_provider: Literal["outbox", "twilio"] = Field("outbox", description="SMS: local outbox or Twilio.")
    dm_provider: Literal["outbox", "list"] = Field("outbox", description="Printed DM: outbox, or `list`: CSV for "
                                                   "the print vendor.")
    phone_provider: Literal["outbox", "list"] = Field("outbox", description="Phone: outbox, or `list`: call list CSV.")
    insert_provider: Literal["outbox", "list"] = Field("outbox", description="Package inserts: outbox, or `list`: "
                                                       "insert list CSV for the warehouse.")
    lists_dir: Path | None = Field(None, description="DM / call / insert lists, one folder per send date "
                                   "(default: <data_dir>/lists).")
    dm_encoding: str = Field("cp932", description="Encoding of the DM list for the print vendor (CP932 = Windows "
                             "Shift_JIS); a row it cannot encode fails with the reason, never silently replaced.")
    sendgrid_host: str = Field("https://api.sendgrid.com", description="SendGrid API base URL (tests: loopback).")
    sendgrid_unsubscribe_group_id: int | None = Field(None, description="SendGrid ASM unsubscribe group id.")
    sendgrid_sandbox_mode: bool = Field(False, description="Dry run: SendGrid validates each request, delivers nothing.")
    line_api_host: str = Field("https://api.line.me", description="LINE Messaging API base URL (tests: loopback).")
    twilio_base_url: str | None = Field(None, description="Twilio API base URL override (tests: loopback).")
    twilio_from_number: str = Field("", description="Twilio sender number (E.164) or alphanumeric sender id.")
    twilio_messaging_service_sid: str = Field("", description="Twilio Messaging Service SID (MG...); wins over from.")
    channel_timeout_seconds: float = Field(10.0, gt=0, description="Time-out of one provider request.")
    channel_max_attempts: int = Field(4, ge=1, description="Attempts per request where a retry is safe.")
    channel_max_wait_seconds: float = Field(60.0, ge=0, description="Longest wait a provider's 429 may impose.")
    channel_concurrency: int = Field(4, ge=1, description="Provider requests in flight at once, per channel.")
    channel_requests_per_second: float = Field(0.0, ge=0, description="Throttle per channel; 0 = no throttle.")
    channel_max_in_flight: int = Field(
        1000, ge=1, description="Recipients handed to a provider at once, over all requests in flight: the most "
        "a process killed mid-send can leave undecided (`sending`, then `unknown`).")
    send_max_failures: int = Field(
        3, ge=1, description="A message a provider refused (`failed`) is tried again on later runs until it has "
        "failed this many times; the reason of each failure is kept.")
    reconcile_wait_hours: float = Field(
        6.0, ge=0, description="An e-mail left `unknown` (the process died or SendGrid did not answer) for which "
        "no SendGrid event has arrived this many hours after its hand-over, while events for the same night's "
        "other e-mails did arrive, was never accepted: it is sent again. (SendGrid reports `processed` "
        "within seconds of accepting a message.)")
    reconcile_max_attempts: int = Field(
        5, ge=1, description="Hand-overs an e-mail may have in all when SendGrid's events show it was never "
        "accepted (each resend needs that evidence anew); beyond them it stays `unknown` for a person.")

    # Feedback: provider webhooks (kizuna/events). Secrets (the SendGrid verification key, the LINE
    # channel secret) are not settings: kizuna.secrets resolves SENDGRID_WEBHOOK_PUBLIC_KEY and
    # LINE_CHANNEL_SECRET (see sendgrid_webhook_public_key / line_channel_secret below).
    events_store: Path | None = Field(None, description="The webhook event store, an SQLite file the webhook "
                                      "service appends to (default: <data_dir>/events.sqlite).")
    webhook_max_age_seconds: int = Field(300, ge=1, description="A signed webhook whose timestamp is older (or "
                                         "further in the future) than this is refused as a replay.")
    conversion_window_days: int = Field(30, ge=1, description="Campaign results: an order counts as a conversion "
                                        "when it comes within this many days after the send (dbt var "
                                        "`conversion_window_days`, passed by kizuna's dbt runner).")

    # Issue 16, unique coupons (campaigns/coupons.py, docs/coupons.md).
    coupons_dir: Path | None = Field(None, description="Unique coupon codes, one import file per send date "
                                     "(`<send date>.csv`) for the cart system (default: <data_dir>/coupons).")
    coupon_code_length: int = Field(10, ge=8, le=24, description="Random characters of a unique coupon code (after "
                                    "the step's prefix), from an alphabet without 0/O/1/I/L.")

    # Notifications and Prefect (issue 18: Prefect shows the night, a failed night reaches a person;
    # kizuna/notify.py, kizuna/prefect_artifacts.py, docs/operations.md).
    notify_urls: SecretStr = Field(
        SecretStr(""), description="Where a stopped night is announced: one or more apprise URLs, separated by "
        "commas or spaces (Slack `slack://...`, Microsoft Teams `workflows://...`, Chatwork `chatwork://...`, "
        "e-mail `mailtos://...`, any webhook `json://` / `jsons://host/path`). Empty: nobody is told. Webhook URLs "
        "carry tokens: kept masked like a secret.")
    notify_summary: bool = Field(False, description="Also send a short summary of every night that ran to the end.")
    report_base_url: str = Field(
        "", description="Where people open the reports folder over HTTP (e.g. an intranet share): the Prefect "
        "link artifact and the notifications link `<base>/<report file>`. Empty: a file:// URI.")
    # Analysts (issue 18 item 5; docs/analysts.md): the night is built in `warehouse` and, once its marts
    # passed their gate, copied whole to this file and swapped in atomically. Analysts open this one.
    published_warehouse: Path | None = Field(
        None, description="The warehouse analysts open (read-only): a copy of KIZUNA_WAREHOUSE published after "
        "each night's marts passed their gate, replaced in one atomic rename, so a reader never blocks the run "
        "nor sees half a night (default: <data_dir>/warehouse.published.duckdb).")
    # Issue 18, language (kizuna/i18n.py, docs/locale.md): the report, the quality page and the console.
    locale: Literal["ja", "en"] = Field("ja", description="Language of the report, the quality page and the "
                                        "console summary: `ja` (Japanese, the default) or `en` (English).")
    # Predictive CLV (issue 19; kizuna/predict/, docs/predictions.md).
    discount_rate: float = Field(
        0.10, ge=0, le=1, description="Annual discount rate of the predicted CLV (customer_predictions.predicted_clv_12m): "
        "a yen a year from now is worth 1/(1+rate) today.")
    predict_min_repeat_buyers: int = Field(
        500, ge=1, description="Below this many repeat buyers (one-off buyers with a second purchase) the purchase "
        "model is not fitted: too few to fit reliably; the report says so and the historical marts stand.")
    predict_holdout_weeks: int = Field(
        13, ge=1, le=52, description="The nightly check fits on all but the last this many weeks and predicts them.")
    predict_max_holdout_error: float = Field(
        0.20, gt=0, description="The report warns when the predicted repeat purchases of the hold-out weeks miss the "
        "actual ones by more than this share.")

    # Issue 20, start-up costs (kizuna/night.py, docs/modelling.md).
    local_prefect: bool = Field(
        True, description="Without a Prefect API (PREFECT_API_URL), run `kizuna run` and `kizuna demo` as the "
        "Prefect flow on Prefect's temporary local server (the default; its flow runs kept in PREFECT_HOME). false: "
        "run the stages directly, without the server's 7-25 s start and without a flow run record: the fast path "
        "for development and a small shop's cron. With a Prefect API configured the flow always runs on it.")

    # Issue 22, the marketers' console (kizuna/console/, docs/console.md). The console never writes the
    # warehouse or the ledger: its actions go to its own SQLite store and the nightly run folds them in.
    console_store: Path | None = Field(
        None, description="The console's own SQLite store: holds, approvals, decisions on unknown sends, erasure "
        "requests and the audit trail (default: <data_dir>/console.sqlite).")
    console_users: Path | None = Field(
        None, description="The console's users: one `name:scrypt$...` line each, salted password hashes written by "
        "`kizuna console add-user` (default: <data_dir>/console-users.txt).")
    require_approval: str = Field(
        "", pattern=r"^\s*((dm|phone)\s*(,\s*(dm|phone)\s*)*)?$",
        description="Printed lists a person must approve in the console before the nightly run writes them: "
        "`dm`, `phone` or `dm,phone` (empty: none). Unapproved rows wait as `awaiting_approval`.")
    console_https_only: bool = Field(
        False, description="Send the console's session cookie over HTTPS only: set it when the console is "
        "reached through a TLS proxy (docs/console.md).")
    console_session_hours: float = Field(8, gt=0, description="A console login lasts this many hours.")

    # Issue 21, engines (kizuna/engines.py, docs/engines.md): the dbt project on another SQL engine. The loader,
    # the ledger and the rest of the night stay on DuckDB; the raw tables are copied to the engine and dbt
    # builds the marts there (dbt_project/profiles.yml: one target per engine).
    engine: Literal["duckdb", "postgres", "spark"] = Field(
        "duckdb", description="Where dbt builds the marts: `duckdb` (the embedded warehouse file, the default), "
        "`postgres` (the PostgreSQL database KIZUNA_POSTGRES_*; the night's raw tables are copied there first) or "
        "`spark` (a Spark session, KIZUNA_SPARK_*; the raw tables are written there as Parquet first).")
    postgres_host: str = Field("localhost", description="`postgres` engine: the server's host name, or the folder "
                               "of its Unix socket.")
    postgres_port: int = Field(5432, ge=1, le=65535, description="`postgres` engine: the server's port.")
    postgres_user: str = Field("kizuna", description="`postgres` engine: the role dbt and the copy log in as; it "
                               "creates the schemas raw, staging, intermediate, marts, reference in the database.")
    postgres_password: SecretStr = Field(SecretStr(""), description="`postgres` engine: that role's password.")
    postgres_database: str = Field("kizuna", description="`postgres` engine: the database that holds kizuna's schemas.")
    # Issue 21, engines: Spark (dbt-spark's `session` method: Spark runs inside the night's process).
    spark_master: str = Field("local[2]", description="`spark` engine: the Spark master the session runs on "
                              "(`local[2]`: two cores of this machine; a cluster's `spark://host:7077`).")
    spark_dir: Path | None = Field(None, description="`spark` engine: the session's folder: its tables (Parquet), "
                                   "the raw tables' Parquet copies and its Derby metastore (default: <data_dir>/spark).")
    spark_shuffle_partitions: int = Field(4, ge=1, description="`spark` engine: partitions after a join or group by "
                                          "(Spark's default, 200, costs seconds per model on a small shop).")
    spark_driver_memory: str = Field("2g", description="`spark` engine: the Spark driver's memory (a JVM size).")

    @property
    def approval_channels(self) -> tuple[str, ...]:
        """KIZUNA_REQUIRE_APPROVAL as channel names (`dm`, `phone`)."""
        return tuple(sorted({c.strip() for c in self.require_approval.split(",") if c.strip()}))

    @property
    def sendgrid_webhook_public_key(self):
        """SendGrid Event Webhook verification key (base64 DER, as shown by SendGrid), a SecretStr."""
        from kizuna.secrets import get_secret

        return get_secret("SENDGRID_WEBHOOK_PUBLIC_KEY")

    @property
    def line_channel_secret(self):
        """LINE channel secret (signs X-Line-Signature), a SecretStr."""
        from kizuna.secrets import get_secret

        return get_secret("LINE_CHANNEL_SECRET")

    @model_validator(mode="after")
    def _derive_paths(self) -> "Settings":
        self.home = self.home.resolve()
        data = (self.data_dir or self.home / "data").resolve()
        self.data_dir = data
        self.exports_dir = (self.exports_dir or data / "exports").resolve()
        self.landing_dir = (self.landing_dir or data / "landing").resolve()
        self.archive_dir = (self.archive_dir or data / "archive").resolve()
        self.warehouse = (self.warehouse or data / "warehouse.duckdb").resolve()
        self.published_warehouse = (self.published_warehouse or data / "warehouse.published.duckdb").resolve()
        self.spark_dir = (self.spark_dir or data / "spark").resolve()  # engines (issue 21): the spark engine's folder
        self.ledger = (self.ledger or data / "ledger.duckdb").resolve()
        self.outbox_dir = (self.outbox_dir or data / "outbox").resolve()
        self.reports_dir = (self.reports_dir or data / "reports").resolve()
        self.events_store = (self.events_store or data / "events.sqlite").resolve()
        self.coupons_dir = (self.coupons_dir or data / "coupons").resolve()
        self.console_store = (self.console_store or data / "console.sqlite").resolve()
        self.console_users = (self.console_users or data / "console-users.txt").resolve()
        self.dbt_project_dir = (self.dbt_project_dir or self.home / "dbt_project").resolve()
        return self


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The settings of this process, read once from the environment."""
    return Settings()
