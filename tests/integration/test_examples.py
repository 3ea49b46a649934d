"""Every sample request in docs/examples works against the sample network,
and the README's few lines of Python submit an order."""
from __future__ import annotations

import json
import re
from pathlib import Path

import msgspec

from adapters.schemas import all_schemas
from tests.integration.conftest import run, running_service

ROOT = Path(__file__).resolve().parents[2]
# in the order a day would bring them
EXAMPLES = [
    ("quote.json", "o2o.orders.quote"),
    ("order.json", "o2o.orders.submit"), ("order-status.json", "o2o.orders.status"),
    ("order-accept.json", "o2o.orders.accept"), ("order-progress.json", "o2o.orders.progress"),
    ("order-cancel.json", "o2o.orders.cancel"), ("order-pickup.json", "o2o.orders.submit"),
    ("order-decline.json", "o2o.orders.decline"), ("order-refund.json", "o2o.orders.refund"),
    ("order-scheduled.json", "o2o.orders.submit"),
    ("stock-receive.json", "o2o.stock.receive"),
    ("stock-adjust.json", "o2o.stock.adjust"), ("stock-count.json", "o2o.stock.count"),
    ("stock-safety.json", "o2o.stock.safety"),
    ("stock-get.json", "o2o.stock.get"), ("stock-nearby.json", "o2o.stock.nearby"),
    ("member-signup.json", "o2o.members.signup"),
    ("member-bind.json", "o2o.members.bind"), ("pos-sale.json", "o2o.pos.sale"),
    ("member-redeem.json", "o2o.members.redeem"), ("member-redeem-pickup.json", "o2o.members.redeem"),
    ("member-collect.json", "o2o.members.collect"), ("member-redeem-pickup-later.json", "o2o.members.redeem"),
    ("member-cancel-redemption.json", "o2o.members.cancel_redemption"), ("member-get.json", "o2o.members.get"),
    ("pos-refund.json", "o2o.pos.refund"),  # after the member's points were used: it takes some back
    ("member-rebind.json", "o2o.members.rebind"), ("benefit-rules.json", "o2o.benefit.rules.publish"),
    ("benefit-statement.json", "o2o.benefit.statement"), ("benefit-close.json", "o2o.benefit.close"),
    ("benefit-paid.json", "o2o.benefit.paid"), ("stock-suggest.json", "o2o.stock.suggest"),
]
# only with a test clock (o2o serve --test-clock)
CLOCK_EXAMPLES = [("clock-advance.json", "o2o.clock.advance"), ("clock-set.json", "o2o.clock.set")]


def test_every_example_request_succeeds_in_a_days_order(nats_server):
    shipped = {p.name for p in (ROOT / "docs/examples").glob("*.json")}
    assert shipped == {name for name, _ in EXAMPLES + CLOCK_EXAMPLES}

    async def go():
        async with running_service(nats_server.url) as (engine, nc):
            for name, subject in EXAMPLES:
                msg = await nc.request(subject, (ROOT / "docs/examples" / name).read_bytes(), timeout=10)
                assert not (msg.headers or {}).get("Nats-Service-Error"), (name, msg.headers)
                reply = json.loads(msg.data)
                if name == "order.json":
                    assert reply["status"] == "routed", reply
                if name == "order-scheduled.json":  # noon on 2026-01-01: booked for tomorrow's 18:00
                    assert (reply["status"], reply["due_at"]) == ("booked", "2026-01-02T09:15:00Z"), reply
                if name == "stock-safety.json":  # counted 12 just before: 4 kept for the counter
                    assert (reply["on_hand"]["SNA-002"], reply["available"]["SNA-002"]) == (12, 8), reply
                if name == "member-get.json":
                    assert reply["identities"] == {"wechat": "wx-oA1b2C3d"} and reply["points"] >= 0
                    assert reply["reserved"] == 0 and reply["gifts"] == [] and reply["buckets"]
                if name == "member-collect.json":
                    assert reply["gifts"] == [], reply

    run(go())


def test_the_clock_examples_move_a_test_clock(nats_server):
    async def go():
        async with running_service(nats_server.url, test_clock="2026-03-30T10:00:00+08:00") as (engine, nc):
            for name, subject in CLOCK_EXAMPLES:
                msg = await nc.request(subject, (ROOT / "docs/examples" / name).read_bytes(), timeout=10)
                assert not (msg.headers or {}).get("Nats-Service-Error"), (name, msg.headers)
            assert json.loads(msg.data)["at"] == "2029-12-31T16:00:00Z"

    run(go())


def test_the_readme_python_snippet_submits_an_order_and_sees_it_routed(nats_server):
    readme = (ROOT / "README.md").read_text()
    code = re.search(r"```python\n(.*?)```", readme, re.S).group(1)
    code = code.replace("nats://127.0.0.1:4222", nats_server.url)

    async def go():
        async with running_service(nats_server.url):
            scope: dict = {}
            exec(compile(code.replace("asyncio.run(main())", ""), "README.md", "exec"), scope)
            return await scope["main"]()

    reply = run(go())
    assert reply["status"] == "routed" and reply["node"]


def test_the_api_docs_python_submits_by_request_reply_and_by_intake_and_hears_both_decisions(nats_server):
    doc = (ROOT / "docs/api.md").read_text()
    code = re.search(r"## From Python.*?```python\n(.*?)```", doc, re.S).group(1)

    async def go():
        async with running_service(nats_server.url):
            scope: dict = {"__name__": "api_md"}
            exec(compile(code, "docs/api.md", "exec"), scope)
            return await scope["main"](nats_server.url)

    decision, event = run(go())
    assert decision["status"] == "routed" and decision["node"]
    assert event["topic"].endswith(".Routed") and event["data"]["parts"]


def test_the_committed_api_schemas_are_the_generated_ones():
    committed = json.loads((ROOT / "docs/schemas/api.json").read_text())
    assert committed == json.loads(msgspec.json.encode(all_schemas())), "regenerate with: o2o schemas"


def test_published_events_of_every_kind_validate_against_their_schemas(nats_server):
    import jsonschema

    schemas = json.loads(msgspec.json.encode(all_schemas()))
    validators = {subject: jsonschema.Draft202012Validator({**schema, "$defs": schemas["$defs"]})
                  for subject, schema in schemas["events"].items()}

    async def go():
        async with running_service(nats_server.url) as (engine, nc):
            for name, subject in EXAMPLES:
                await nc.request(subject, (ROOT / "docs/examples" / name).read_bytes(), timeout=10)
            js = nc.jetstream()
            info = await js.stream_info("O2O_EVENTS")
            sub = await js.subscribe("o2o.events.>", ordered_consumer=True)
            seen: dict[str, int] = {}
            for _ in range(info.state.messages):
                msg = await sub.next_msg(timeout=10)
                assert msg.subject in validators, msg.subject
                # jsonschema is slow on the 62 opening inventories: a few of each kind prove the schema
                if seen.get(msg.subject, 0) < 5:
                    validators[msg.subject].validate(json.loads(msg.data)["data"])
                seen[msg.subject] = seen.get(msg.subject, 0) + 1
            return seen

    seen = run(go())
    assert {"o2o.events.order.placed", "o2o.events.order.routed", "o2o.events.order.booked",
            "o2o.events.member.signed_up"} <= set(seen)
