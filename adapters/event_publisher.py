"""Publishes every stored domain event, after commit and in commit order, to
`o2o.events.<aggregate>.<event>` in a JetStream stream. It resumes after the
last notification the stream holds. Each message names the one before it
(`Nats-Expected-Last-Msg-Id`), so the server refuses anything that would
land after a lost message, and carries its own `Nats-Msg-Id`, so a repeat is
dropped: the stream is always the store's events in order, none skipped,
none twice. After any failure (a lost ack, a server restart) the publisher
reads where the stream ends and goes on from there.

The engine hands its committed events over (`feed`), so under load they are
published from memory; the store is read only for what was not handed over
(at start, after a failure, across a gap). Only the last message of a page
asks for an ack: each message names the one before it, so the last one
stored means the whole page is (nats-py's publish_async costs a semaphore,
a random token and a future per message: an ack per event was the costly
part of publishing; benchmarks/README.md)."""
from __future__ import annotations

import asyncio
import logging
import re
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from typing import Any
from uuid import UUID

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import StreamConfig
from nats.errors import MaxPayloadError
from nats.js.errors import NotFoundError

from adapters.nats_connection import publish_all
from domain import ids
from engine.threads import name_os_thread

log = logging.getLogger("o2o.events")

STREAM = "O2O_EVENTS"
SUBJECTS = ["o2o.events.>"]
ID_HEADER = "O2o-Notification-Id"
ID_HEADER_BYTES = ID_HEADER.encode()
MAX_FED = 200_000  # events held in memory for publishing; beyond, the store is read instead


class ForeignStream(Exception):
    """The stream holds events this store never stored."""


class NotStored(Exception):
    """JetStream refused a message of the page (or nobody answered for the stream)."""


MSG_ID = b"o2o-%d"  # a published event's de-duplication key: its notification id in the store


@lru_cache(maxsize=None)
def subject_for(topic: str) -> str:
    """'domain.order:Order.ReadyForPickup' -> 'o2o.events.order.ready_for_pickup'."""
    qualname = topic.split(":", 1)[-1]
    aggregate, _, event = qualname.rpartition(".")
    return f"o2o.events.{_snake(aggregate)}.{_snake(event)}"


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def envelope(nid: int, topic: str, originator_id: str, version: int, state: bytes) -> bytes:
    """The stored state is already JSON: wrap it without decoding it."""
    return b'{"notification_id":%d,"topic":"%s","originator_id":"%s","originator_version":%d,"data":%s}' % (
        nid, topic.encode(), originator_id.encode(), version, state)


@lru_cache(maxsize=None)
def _subject(topic: str) -> bytes:
    return subject_for(topic).encode()


def hpub(row: tuple[int, str, int, str, bytes], previous: int, reply: bytes) -> tuple[bytes, int]:
    """One stored event as the HPUB command nats-py's publish would send for it
    (the same headers, in the same order), and its size as the server counts
    it against its maximum payload (headers and payload). `reply`: the reply
    subject and a space, or empty."""
    nid, oid, version, topic, state = row
    payload = envelope(nid, topic, oid, version, state)
    if previous:
        hdr = b"NATS/1.0\r\nNats-Msg-Id: %s\r\n%s: %d\r\nNats-Expected-Last-Msg-Id: %s\r\n\r\n" % (
            MSG_ID % nid, ID_HEADER_BYTES, nid, MSG_ID % previous)
    else:
        hdr = b"NATS/1.0\r\nNats-Msg-Id: %s\r\n%s: %d\r\n\r\n" % (MSG_ID % nid, ID_HEADER_BYTES, nid)
    size = len(hdr) + len(payload)
    return b"HPUB %s %s%d %d\r\n%s%s\r\n" % (_subject(topic), reply, len(hdr), size, hdr, payload), size


def _rows(notes: Any) -> list[tuple[int, str, int, str, bytes]]:
    """The library's notifications as the rows the publisher reads."""
    return [(n.id, ids.text(n.originator_id) if type(n.originator_id) is UUID else str(n.originator_id),
             n.originator_version, n.topic, n.state) for n in notes]


async def ensure_stream(js: JetStreamContext, name: str, subjects: list[str], **kw: Any) -> None:
    try:
        await js.stream_info(name)
    except NotFoundError:
        await js.add_stream(StreamConfig(name=name, subjects=subjects, **kw))


class EventPublisher:
    def __init__(self, nc: Client, recorder: Any, committed: asyncio.Event, page: int = 1000,
                 ack_timeout: float = 5.0, poll_s: float = 0.5):
        self.nc = nc
        self.js = nc.jetstream()
        self.recorder = recorder
        self.committed = committed
        self.page = page
        self.ack_timeout = ack_timeout  # a lost ack must not stall the stream for ever
        self.poll_s = poll_s  # the store is read this often when no commit is signalled (another process writes)
        self.last = 0
        self.pool = ThreadPoolExecutor(1, thread_name_prefix="events", initializer=name_os_thread)
        self._stopping = False
        self._task: asyncio.Task | None = None
        self._inbox = ""
        self._sub: Any = None
        self._page_no = 0  # acks of an abandoned page are ignored
        self._refused: str | None = None
        self._page_done = asyncio.Event()
        self._fed: deque = deque()  # committed notifications handed over by the engine, in commit order

    async def last_published(self) -> int:
        info = await self.js.stream_info(STREAM)
        if not info.state.last_seq:
            return 0
        msg = await self.js.get_msg(STREAM, info.state.last_seq)
        return int((msg.headers or {}).get(ID_HEADER, 0))

    async def start(self) -> None:
        await ensure_stream(self.js, STREAM, SUBJECTS, duplicate_window=3600)
        self._inbox = self.nc.new_inbox()
        self._sub = await self.nc.subscribe(f"{self._inbox}.*", cb=self._on_ack)
        self.last = await self.last_published()
        stored = self.recorder.max_notification_id() or 0
        if self.last > stored:
            raise ForeignStream(
                f"stream {STREAM} already holds event {self.last} but the event store's last is {stored}: it was "
                f"filled from another store; delete the stream (or the embedded server's data folder) or use "
                f"another NATS server")
        self._task = asyncio.get_running_loop().create_task(self._run(), name="event-publisher")

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        resync = False
        while True:
            if resync:  # where does the stream end now?
                try:
                    self.last = await self.last_published()
                    resync = False
                except Exception as e:
                    log.warning("event stream not reachable (%s); retrying", e)
                    await asyncio.sleep(0.5)
                    continue
            self.committed.clear()  # before reading, so a commit after the read wakes us
            rows = self._take()
            if rows is None:
                rows = await loop.run_in_executor(self.pool, self._read, self.last + 1)
            if rows:
                try:
                    await self._publish(rows)
                except Exception as e:  # server away or an ack lost
                    log.warning("publishing events after %d failed (%r); resuming where the stream ends",
                                self.last, e)
                    await asyncio.sleep(0.2)
                    resync = True
                continue
            if self._stopping:
                return
            try:
                await asyncio.wait_for(self.committed.wait(), self.poll_s)
            except asyncio.TimeoutError:
                pass

    def feed(self, notes: list[Any]) -> None:
        """Committed notifications, in commit order; called from the engine's thread."""
        if len(self._fed) > MAX_FED:  # the stream is away: stop holding, read the store when it is back
            self._fed.clear()
        self._fed.extend(notes)

    def _take(self) -> list[tuple[int, str, int, str, bytes]] | None:
        """The next page from what was fed, if it follows on from the last published
        without a gap (another writer's events, or ids the store skipped): else None."""
        fed = self._fed
        try:
            while fed and fed[0].id <= self.last:
                fed.popleft()
            if not fed or fed[0].id != self.last + 1:
                return None
            notes = [fed.popleft()]
            while fed and len(notes) < self.page and fed[0].id == notes[-1].id + 1:
                notes.append(fed.popleft())
        except IndexError:  # feed() cleared it meanwhile, from the engine's thread: read the store
            return None
        return _rows(notes)

    def _read(self, start: int) -> list[tuple[int, str, int, str, bytes]]:
        """A page of the store from `start`: (notification id, originator id as text, version, topic, state)."""
        rows = getattr(self.recorder, "notification_rows", None)
        if rows is not None:
            return rows(start, self.page, text_ids=True)
        return _rows(self.recorder.select_notifications(start, self.page))  # in memory: the library's

    async def _publish(self, rows: list[tuple[int, str, int, str, bytes]]) -> None:
        """A page in one write of HPUB commands; each message names the one
        before it, so the ack asked for by the last answers for the page."""
        self._page_no += 1
        reply = b"%s.%d " % (self._inbox.encode(), self._page_no)
        self._refused = None
        self._page_done.clear()
        previous = self.last
        out, size, largest = bytearray(), 0, self.nc.max_payload
        last = len(rows) - 1
        for i, row in enumerate(rows):
            command, n = hpub(row, previous, reply if i == last else b"")
            if n > largest:  # as publish refuses it: the server would close the connection
                raise MaxPayloadError(f"event {row[0]} is {n} bytes, the server takes {largest}")
            out += command
            size += n
            previous = row[0]
        if not await publish_all(self.nc, out, len(rows), size):
            raise NotStored("not connected")  # published nothing: resumed where the stream ends
        await asyncio.wait_for(self._page_done.wait(), self.ack_timeout)
        if self._refused is not None:
            raise NotStored(self._refused)
        self.last = rows[-1][0]

    async def _on_ack(self, msg: Msg) -> None:
        if msg.subject.rpartition(".")[2] != str(self._page_no) or self._page_done.is_set():
            return
        status = (msg.headers or {}).get("Status")
        if status or b'"error"' in msg.data:  # 503: no stream answered; else JetStream's reason
            self._refused = f"status {status}" if status else msg.data.decode(errors="replace")
        self._page_done.set()

    async def stop(self, timeout: float = 10.0) -> None:
        """Publishes what is stored, then stops; gives up after `timeout`
        seconds without a server (the next start resumes where the stream ends)."""
        self._stopping = True
        self.committed.set()
        if self._task:
            try:
                await asyncio.wait_for(self._task, timeout)
            except asyncio.TimeoutError:
                log.warning("events after %d not published before the stop; the next start publishes them", self.last)
        if self._sub is not None:
            await self._sub.unsubscribe()
        self.pool.shutdown(wait=True)
