"""JSON Schemas (2020-12) of every request and reply on the wire, generated
from the msgspec types; served on `o2o.schema` and committed under docs/schemas/api."""
from __future__ import annotations

from typing import Any

import msgspec

from domain import commands as c
from engine import replies as r

REQUESTS = [c.SubmitOrder, c.CancelOrder, c.AcceptOrder, c.DeclineOrder, c.ReportProgress, c.GetOrder, c.ReceiveStock,
            c.AdjustStock, c.CountStock, c.FindStock, c.SellOverCounter, c.SignUpMember, c.BindIdentity,
            c.RedeemPoints, c.GetMember]
REPLIES = [r.OrderReply, r.StockReply, r.StockNearby, r.MemberReply]


def all_schemas() -> dict[str, Any]:
    types = REQUESTS + REPLIES
    schemas, components = msgspec.json.schema_components(types, ref_template="#/$defs/{name}")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "requests": {t.__name__: s for t, s in zip(REQUESTS, schemas[: len(REQUESTS)])},
        "replies": {t.__name__: s for t, s in zip(REPLIES, schemas[len(REQUESTS):])},
        "$defs": components,
    }
