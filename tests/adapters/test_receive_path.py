"""The service's own reading of nats-py's protocol stream (`O2OService._parse`):
whatever way the stream is cut into reads, every message reaches the same
place, in the same order, as nats-py's parser sends it; orders without
headers go to their intake a read's worth at a time."""
from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest
from nats.protocol.parser import Parser

from adapters.service import O2OService

ORDERS, OTHER, GONE = 1, 2, 3  # subscription ids: an order endpoint's, another's, one unsubscribed

STREAM = b"".join([
    b"MSG o2o.orders.submit 1 _INBOX.a.1 5\r\nabcde\r\n",
    b"MSG o2o.orders.submit 1 _INBOX.a.2 3\r\nbad\r\n",
    b"PING\r\n",
    b"MSG o2o.orders.submit 1 _INBOX.a.3 0\r\n\r\n",
    b"HMSG o2o.orders.submit 1 _INBOX.a.4 12 17\r\nNATS/1.0\r\n\r\nhello\r\n",  # headers: the client's way
    b"MSG $SRV.PING 2 _INBOX.b.1 2\r\n{}\r\n",
    b"MSG o2o.orders.submit 1 11\r\nno reply to\r\n",  # nothing to answer: the client's way
    b"+OK\r\n",
    b"MSG o2o.orders.submit 3 _INBOX.a.5 4\r\ngone\r\n",
    b"MSG o2o.orders.submit  1   _INBOX.a.6  4\r\nlast\r\n",
    b"HMSG o2o.events 2 12 16\r\nNATS/1.0\r\n\r\nabcd\r\n",
])


def reference(stream: bytes) -> list[tuple]:
    """What nats-py's parser sends, read as the service routes it."""
    seen: list[tuple] = []
    nc = fake_client(seen)
    asyncio.run(Parser(nc).parse(stream))
    return as_routed(seen)


def as_routed(seen: list[tuple]) -> list[tuple]:
    """An order without headers and with a reply subject that reaches the
    client's `_process_msg` goes on to its intake there (the service's hook)."""
    return [("take", e[4], e[3]) if e[0] == "msg" and e[1] == ORDERS and not e[5] and e[3] else e for e in seen]


def fake_client(seen: list[tuple]) -> SimpleNamespace:
    async def process_msg(sid, subject, reply, data, headers):
        seen.append(("msg", sid, bytes(subject), bytes(reply), bytes(data), bytes(headers) if headers else None))

    async def process_ping():
        seen.append(("ping",))

    return SimpleNamespace(stats={"in_msgs": 0, "in_bytes": 0}, _process_msg=process_msg, _process_ping=process_ping,
                           _subs={ORDERS: SimpleNamespace(_received=0), OTHER: SimpleNamespace(_received=0)},
                           _build_message=lambda sid, subject, reply, data, hdr: (sid, subject, reply, data))


def through_service(reads: list[bytes]) -> tuple[list[tuple], list[list[bytes]], list[tuple]]:
    seen: list[tuple] = []
    batches: list[list[bytes]] = []
    refused: list[tuple] = []
    nc = fake_client(seen)

    def take_many(batch):
        batches.append([data for data, _ in batch])
        seen.extend(("take", data, reply) for data, reply in batch)
        return [(i, "refused") for i, (data, _) in enumerate(batch) if data == b"bad"]

    async def taken(msg, outcome):
        refused.append((msg, outcome))

    service = SimpleNamespace(nc=nc, _direct={ORDERS: ("submit", None, take_many), GONE: ("submit", None, take_many)},
                              _taken=taken)
    parser = Parser(nc)
    parse = O2OService._parse(service, parser, parser.parse)

    async def go():
        for data in reads:
            await parse(data)

    asyncio.run(go())
    assert not parser.buf  # everything read was handled
    return seen, batches, refused


def test_every_message_goes_where_and_when_nats_pys_parser_sends_it_however_the_reads_cut_the_stream():
    expected = reference(STREAM)
    assert [e[0] for e in expected].count("take") == 4
    for cut in range(len(STREAM) + 1):
        seen, _, _ = through_service([STREAM[:cut], STREAM[cut:]])
        assert as_routed(seen) == expected, cut
    for a in range(0, len(STREAM), 7):
        for b in range(a, len(STREAM), 13):
            assert as_routed(through_service([STREAM[:a], STREAM[a:b], STREAM[b:]])[0]) == expected, (a, b)


def test_the_orders_of_one_read_go_to_their_intake_together_and_a_refused_one_is_answered_with_its_outcome():
    _, batches, refused = through_service([STREAM])
    assert batches[0] == [b"abcde", b"bad"]  # until the PING, which nats-py's parser then reads with the rest
    assert refused == [((ORDERS, b"o2o.orders.submit", b"_INBOX.a.2", b"bad"), "refused")]
    stream = b"".join(b"MSG o2o.orders.submit 1 _INBOX.a.%d 1\r\n%d\r\n" % (i, i % 10) for i in range(50))
    _, batches, _ = through_service([stream])
    assert len(batches) == 1 and len(batches[0]) == 50


def test_a_malformed_line_is_left_to_nats_pys_parser_and_its_protocol_error():
    from nats.errors import ProtocolError

    seen: list[tuple] = []
    nc = fake_client(seen)
    service = SimpleNamespace(nc=nc, _direct={}, _taken=None)
    parser = Parser(nc)
    parse = O2OService._parse(service, parser, parser.parse)
    with pytest.raises(ProtocolError):
        asyncio.run(parse(b"MSG a b c d e f\r\nxx\r\n"))


def test_an_order_refused_at_once_is_answered_with_the_command_nats_micros_respond_error_sends():
    from nats.aio.client import Client
    from nats.aio.msg import Msg
    from nats.micro.request import Request

    from adapters.service import _error_reply
    from adapters.wire import WireError

    sent: list[bytes] = []
    nc = Client()

    async def send_command(cmd, priority=False):
        sent.append(bytes(cmd))

    nc._send_command = send_command
    nc._max_pending_size = 1 << 20  # not connected: publish buffers, as while reconnecting
    error = WireError(400, "$.lines[0].qty: expected `int` >= 1\r\nand \u00e9 more ")

    async def go():
        await Request(Msg(_client=nc, reply="_INBOX.x.1")).respond_error(str(error.code), error.description)

    asyncio.run(go())
    # nats-py writes its empty reply-to field as a second space: the server reads the same command
    assert [cmd.replace(b"  ", b" ", 1) for cmd in sent] == [_error_reply(b"_INBOX.x.1", error)]
