"""The publisher writes a page of events as one buffer of HPUB commands:
each must be what nats-py's publish sent for it before (the control line's
fields, then the headers in their order and the envelope byte for byte),
and the store's rows must carry originator ids as `str(UUID)` writes them."""
from __future__ import annotations

import asyncio
import json
import uuid

import pytest
from eventsourcing.persistence import StoredEvent
from nats.aio.client import Client

from adapters.event_publisher import ID_HEADER, envelope, hpub, subject_for
from engine.store.eventlog import EventLog

TOPIC = "domain.order:Order.ReadyForPickup"


def _fields(command: bytes) -> tuple[list[bytes], bytes]:
    """The control line's fields (the server splits it on spaces: nats-py leaves two
    where the reply is empty) and what follows it."""
    line, rest = command.split(b"\r\n", 1)
    return line.split(), rest


def _as_nats_py_sent(subject: str, reply: str, payload: bytes, headers: dict[str, str]) -> bytes:
    """The command nats-py's Client builds for a publish (its own code, captured)."""
    nc, sent = Client(), []

    async def capture(cmd, priority=False):
        sent.append(bytes(cmd))

    nc._send_command = capture
    asyncio.run(nc._send_publish(subject, reply, payload, len(payload), headers))
    return sent[0]


@pytest.mark.parametrize("previous, reply", [(0, ""), (41, ""), (41, "_INBOX.abc.7")])
def test_an_event_is_written_as_nats_py_publishes_it(previous, reply):
    oid = uuid.uuid4()
    row = (42, str(oid), 3, TOPIC, b'{"at":1.5,"node":"S001"}')
    command, size = hpub(row, previous, (reply + " ").encode() if reply else b"")
    headers = {"Nats-Msg-Id": "o2o-42", ID_HEADER: "42"}
    if previous:
        headers["Nats-Expected-Last-Msg-Id"] = f"o2o-{previous}"
    payload = (f'{{"notification_id":42,"topic":"{TOPIC}","originator_id":"{oid}",'
               f'"originator_version":3,"data":{{"at":1.5,"node":"S001"}}}}').encode()
    assert _fields(command) == _fields(_as_nats_py_sent(subject_for(TOPIC), reply, payload, headers))
    assert size == len(command.split(b"\r\n", 1)[1]) - 2  # headers and payload, as the server counts them
    assert json.loads(envelope(*row[:1], TOPIC, str(oid), 3, row[4]))["originator_id"] == str(oid)


def test_the_sqlite_stores_rows_give_originator_ids_as_text(tmp_path):
    log = EventLog(f"sqlite:///{tmp_path}/events.db")
    ids = [uuid.uuid4() for _ in range(3)]
    log.recorder.insert_events([StoredEvent(i, 1, TOPIC, b"{}") for i in ids])
    rows = log.recorder.notification_rows(1, 10, text_ids=True)
    assert [r[1] for r in rows] == [str(i) for i in ids]
    assert [r[1] for r in log.recorder.notification_rows(1, 10)] == ids  # parsed unless asked
    log.close()


@pytest.mark.postgres
def test_the_postgresql_stores_rows_give_originator_ids_as_text(postgres_url):
    log = EventLog(postgres_url)
    ids = [uuid.uuid4() for _ in range(3)]
    first = log.recorder.insert_events([StoredEvent(i, 1, TOPIC, b"{}") for i in ids])[0]
    rows = log.recorder.notification_rows(first, 3, text_ids=True)
    assert [r[1] for r in rows] == [str(i) for i in ids]
    log.close()
