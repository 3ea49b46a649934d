"""The retailer's own channels (app, web mall, mini programs): a REST/JSON
API on the gateway, in front of the engine's NATS endpoints. Each client
has an API key (`X-Api-Key` or `Authorization: Bearer`) and a channel its
orders carry, and a token bucket (`rate_per_s`, `burst`: 429 with
Retry-After past it). The OpenAPI 3.1 document (`GET /openapi.json`) is
generated from the same msgspec structs the engine decodes."""
from __future__ import annotations

import hmac
import time
from dataclasses import dataclass
from typing import Annotated, Any, Callable

import msgspec
from aiohttp import web
from msgspec import Meta

from adapters.wire import WireError, decode
from domain import ids
from domain.commands import (
    CancelOrder, FindStock, GetMember, GetOrder, Key, QuoteOrder, RedeemPoints, SignUpMember, SubmitOrder,
)
from engine.replies import MemberReply, OrderReply, QuoteReply, StockNearby

VERSION = "0.1.0"


class CancelBody(msgspec.Struct, forbid_unknown_fields=True):
    reason: Annotated[str, Meta(max_length=500)] = "cancelled by customer"


class RedeemBody(msgspec.Struct, forbid_unknown_fields=True):
    points: Annotated[int, Meta(ge=1)]
    gift: Annotated[str, Meta(min_length=1, max_length=200)]
    ref: Key


class ApiError(msgspec.Struct):
    error: str


@dataclass
class Client:
    name: str
    key: str
    channel: str
    rate: float
    burst: int
    tokens: float = 0.0
    last: float = 0.0

    def take(self, now: float) -> float:
        """0 if a request may go now, else the seconds until one may."""
        self.tokens = min(self.burst, self.tokens + (now - self.last) * self.rate)
        self.last = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.rate


# (method, path, subject, request body struct, reply struct, summary)
ROUTES = [
    ("POST", "/v1/orders", "o2o.orders.submit", SubmitOrder, OrderReply, "Submit an order; the reply is the decision"),
    ("POST", "/v1/quotes", "o2o.orders.quote", QuoteOrder, QuoteReply,
     "A cart's options before checkout (delivery, pickup nearby, a split, what is short); nothing reserved"),
    ("GET", "/v1/orders/{external_id}", "o2o.orders.status", None, OrderReply, "An order's status"),
    ("POST", "/v1/orders/{external_id}/cancel", "o2o.orders.cancel", CancelBody, OrderReply, "Cancel an order"),
    ("GET", "/v1/stock/nearby", "o2o.stock.nearby", None, StockNearby, "Nodes near a place that have a SKU"),
    ("POST", "/v1/members", "o2o.members.signup", SignUpMember, MemberReply, "Sign a member up"),
    ("GET", "/v1/members/{member}", "o2o.members.get", None, MemberReply, "A member's points and identities"),
    ("POST", "/v1/members/{member}/redeem", "o2o.members.redeem", RedeemBody, MemberReply, "Redeem points for a gift"),
]
STATUS = {"400": 400, "404": 404, "409": 409, "503": 503, "500": 500}
_enc = msgspec.json.Encoder()


class RestApi:
    def __init__(self, nc: Any, clients: list[Client], timeout_s: float = 10.0, clock: Callable[[], float] = time.monotonic):
        self.nc = nc
        self.clients = clients
        self.timeout_s = timeout_s
        self.clock = clock
        self.refused: dict[str, int] = {"unauthorized": 0, "rate_limited": 0}
        self._openapi: bytes | None = None

    def routes(self) -> list[web.RouteDef]:
        handlers = {"/v1/orders": self.submit, "/v1/quotes": self.quote, "/v1/orders/{external_id}": self.status,
                    "/v1/orders/{external_id}/cancel": self.cancel, "/v1/stock/nearby": self.nearby,
                    "/v1/members": self.sign_up, "/v1/members/{member}": self.member,
                    "/v1/members/{member}/redeem": self.redeem}
        out = [web.route(m, path, self._guard(handlers[path])) for m, path, *_ in ROUTES]
        return out + [web.get("/openapi.json", self.openapi)]

    def _client(self, request: web.Request) -> Client | None:
        given = request.headers.get("X-Api-Key") or request.headers.get("Authorization", "").removeprefix("Bearer ")
        found = None
        for c in self.clients:  # every key compared, in constant time
            if given and hmac.compare_digest(given.encode(), c.key.encode()):
                found = c
        return found

    def _guard(self, handler: Callable[[web.Request, Client], Any]) -> Callable[[web.Request], Any]:
        async def guarded(request: web.Request) -> web.StreamResponse:
            client = self._client(request)
            if client is None:
                self.refused["unauthorized"] += 1
                return _error(401, "unauthorized: a valid X-Api-Key is required")
            wait = client.take(self.clock())
            if wait:
                self.refused["rate_limited"] += 1
                return _error(429, f"rate limit of {client.rate:g}/s exceeded", {"Retry-After": str(max(1, round(wait)))})
            try:
                return await handler(request, client)
            except WireError as e:
                return _error(e.code, e.description)
        return guarded

    async def _body(self, request: web.Request, type_: type) -> Any:
        if request.content_length and request.content_length > 1024 * 1024:
            raise WireError(413, "$: body over 1 MB")
        return decode(await request.read(), type_)

    async def _ask(self, subject: str, cmd: Any) -> web.Response:
        try:
            msg = await self.nc.request(subject, _enc.encode(cmd), timeout=self.timeout_s)
        except Exception as e:  # no engine answering, or too slow
            return _error(503, f"engine not available ({type(e).__name__}); retry later")
        headers = msg.headers or {}
        if headers.get("Nats-Service-Error-Code"):
            return _error(STATUS.get(headers["Nats-Service-Error-Code"], 502), headers.get("Nats-Service-Error", ""))
        return web.Response(body=msg.data, content_type="application/json")

    async def submit(self, request: web.Request, client: Client) -> web.Response:
        cmd = await self._body(request, SubmitOrder)
        if cmd.channel != client.channel:
            raise WireError(403, f"$.channel: this key submits for channel {client.channel!r}")
        return await self._ask("o2o.orders.submit", cmd)

    async def quote(self, request: web.Request, client: Client) -> web.Response:
        return await self._ask("o2o.orders.quote", await self._body(request, QuoteOrder))

    def _order_id(self, request: web.Request, client: Client) -> str:
        external_id = decode(_enc.encode(request.match_info["external_id"]), Key)
        return str(ids.order_id(client.channel, external_id))

    async def status(self, request: web.Request, client: Client) -> web.Response:
        return await self._ask("o2o.orders.status", GetOrder(order_id=self._order_id(request, client)))

    async def cancel(self, request: web.Request, client: Client) -> web.Response:
        body = await self._body(request, CancelBody) if request.can_read_body else CancelBody()
        return await self._ask("o2o.orders.cancel", CancelOrder(order_id=self._order_id(request, client),
                                                                reason=body.reason))

    async def nearby(self, request: web.Request, client: Client) -> web.Response:
        q: dict[str, Any] = dict(request.query)
        for k in ("lat", "lon", "within_km"):
            if k in q:
                q[k] = _number(q[k], k, float)
        if "qty" in q:
            q["qty"] = _number(q["qty"], "qty", int)
        try:
            cmd = msgspec.convert(q, FindStock)
        except msgspec.ValidationError as e:
            raise WireError(400, str(e)) from None
        return await self._ask("o2o.stock.nearby", cmd)

    async def sign_up(self, request: web.Request, client: Client) -> web.Response:
        return await self._ask("o2o.members.signup", await self._body(request, SignUpMember))

    async def member(self, request: web.Request, client: Client) -> web.Response:
        return await self._ask("o2o.members.get", decode(_enc.encode({"member": request.match_info["member"]}),
                                                         GetMember))

    async def redeem(self, request: web.Request, client: Client) -> web.Response:
        body = await self._body(request, RedeemBody)
        cmd = decode(_enc.encode({"member": request.match_info["member"], **msgspec.to_builtins(body)}), RedeemPoints)
        return await self._ask("o2o.members.redeem", cmd)

    async def openapi(self, request: web.Request) -> web.Response:
        if self._openapi is None:
            self._openapi = _enc.encode(openapi_document())
        return web.Response(body=self._openapi, content_type="application/json")


def _number(text: str, name: str, kind: type) -> Any:
    try:
        return kind(text)
    except ValueError:
        raise WireError(400, f"$.{name}: expected a number") from None


def _error(status: int, text: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(status=status, body=_enc.encode(ApiError(text)), content_type="application/json",
                        headers=headers)


QUERY = {"/v1/stock/nearby": [("sku", "string", True), ("lat", "number", True), ("lon", "number", True),
                              ("qty", "integer", False), ("mode", "string", False), ("within_km", "number", False)]}


def openapi_document() -> dict[str, Any]:
    """OpenAPI 3.1, the schemas generated by msgspec from the structs the API decodes and answers."""
    types = sorted({t for *_, body, reply, _ in ROUTES for t in (body, reply) if t} | {ApiError}, key=lambda t: t.__name__)
    _, components = msgspec.json.schema_components(types, ref_template="#/components/schemas/{name}")
    ref = lambda t: {"$ref": f"#/components/schemas/{t.__name__}"}  # noqa: E731
    paths: dict[str, Any] = {}
    for method, path, subject, body, reply, summary in ROUTES:
        op: dict[str, Any] = {"summary": summary, "operationId": subject.removeprefix("o2o.").replace(".", "_"),
                              "security": [{"apiKey": []}],
                              "responses": {"200": {"description": "the engine's reply",
                                                    "content": {"application/json": {"schema": ref(reply)}}}}}
        for code, text in (("400", "invalid input, naming the field"), ("401", "no valid API key"),
                           ("403", "not this client's channel"), ("404", "unknown order, node, SKU or member"),
                           ("409", "the state forbids it"), ("413", "body too large"), ("429", "rate limited"),
                           ("503", "engine overloaded or away")):
            op["responses"][code] = {"description": text, "content": {"application/json": {"schema": ref(ApiError)}}}
        params = [{"name": p.strip("{}"), "in": "path", "required": True,
                   "schema": {"type": "string", "minLength": 1, "maxLength": 128, "pattern": r"^[A-Za-z0-9_.:@-]+$"}}
                  for p in path.split("/") if p.startswith("{")]
        params += [{"name": n, "in": "query", "required": req, "schema": {"type": t}} for n, t, req in QUERY.get(path, [])]
        if params:
            op["parameters"] = params
        if body is not None:
            op["requestBody"] = {"required": True, "content": {"application/json": {"schema": ref(body)}}}
        paths.setdefault(path, {})[method.lower()] = op
    return {"openapi": "3.1.0",
            "info": {"title": "o2o-engine gateway API", "version": VERSION,
                     "description": "The retailer's own channels (app, mall, mini programs); docs/channels.md"},
            "paths": paths, "components": {"schemas": components,
                                           "securitySchemes": {"apiKey": {"type": "apiKey", "in": "header",
                                                                          "name": "X-Api-Key"}}}}
