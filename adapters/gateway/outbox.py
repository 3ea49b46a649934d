"""The gateway's outbox (SQLite): the channel orders it has seen placed, and
the calls owed to the platforms until each is made. An event is
acknowledged on the stream only after its call is written here (one
transaction with what it changes about the order), so a crash between our
event and the platform's call loses nothing; the key (the event's
notification id) makes a redelivered event owe nothing twice."""
from __future__ import annotations

import asyncio
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterator, TypeVar
from pathlib import Path

from engine.threads import name_os_thread

SCHEMA = """
create table if not exists orders (
    order_id text primary key, channel text not null, external_id text not null, mode text not null,
    confirmed integer not null default 0);
create table if not exists calls (
    id integer primary key, key text unique not null, order_id text not null, channel text not null,
    call blob not null, due real not null, attempts integer not null default 0,
    state text not null default 'owed', last_error text);
create index if not exists calls_owed on calls(state, due);
create index if not exists calls_order on calls(order_id, state, id);
"""


T = TypeVar("T")


@dataclass(frozen=True)
class OwedCall:
    id: int
    order_id: str
    channel: str
    call: bytes
    attempts: int


@dataclass(frozen=True)
class ChannelOrder:
    channel: str
    external_id: str
    mode: str
    confirmed: bool


class Outbox:
    def __init__(self, path: str):
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.db.execute("pragma journal_mode=wal")
        self.db.execute("pragma synchronous=full")  # a call recorded is a call kept, also across a power cut
        self.db.executescript(SCHEMA)
        # the gateway's event loop never waits on a commit's fsync: it serves webhooks meanwhile
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="outbox", initializer=name_os_thread)

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """fn(*args) on the outbox's own thread (one: the outbox's work stays in order, never two at once)."""
        return await asyncio.get_running_loop().run_in_executor(self._thread, fn, *args)

    def close(self) -> None:
        self._thread.shutdown(wait=True)
        self.db.close()

    @contextmanager
    def batch(self) -> Iterator[None]:
        """One transaction (one fsync) for what a fetch of events changes; rolled back on an error."""
        self.db.execute("begin immediate")
        try:
            yield
        except BaseException:
            self.db.execute("rollback")
            raise
        self.db.execute("commit")

    def remember(self, order_id: str, channel: str, external_id: str, mode: str) -> None:
        self.db.execute("insert or ignore into orders(order_id, channel, external_id, mode) values (?,?,?,?)",
                        (order_id, channel, external_id, mode))

    def order(self, order_id: str) -> ChannelOrder | None:
        row = self.db.execute("select channel, external_id, mode, confirmed from orders where order_id=?",
                              (order_id,)).fetchone()
        return ChannelOrder(row[0], row[1], row[2], bool(row[3])) if row else None

    def owe(self, key: str, order_id: str, channel: str, call: bytes, due: float, confirms: bool = False) -> bool:
        """Records a call owed (once per key; inside `batch()`, with the order's confirmed flag);
        False when the key was already recorded."""
        cur = self.db.execute("insert or ignore into calls(key, order_id, channel, call, due) values (?,?,?,?,?)",
                              (key, order_id, channel, call, due))
        if confirms:
            self.db.execute("update orders set confirmed=1 where order_id=?", (order_id,))
        return cur.rowcount == 1

    def due(self, now: float, limit: int = 50) -> list[OwedCall]:
        """Owed calls that are due, each the oldest owed of its order (an order's calls go in order)."""
        rows = self.db.execute(
            "select c.id, c.order_id, c.channel, c.call, c.attempts from calls c where c.state='owed' and c.due<=? "
            "and not exists (select 1 from calls d where d.state='owed' and d.order_id=c.order_id and d.id<c.id) "
            "order by c.id limit ?", (now, limit)).fetchall()
        return [OwedCall(*r) for r in rows]

    def next_due(self) -> float | None:
        row = self.db.execute("select min(due) from calls where state='owed'").fetchone()
        return row[0]

    def done(self, call_id: int) -> None:
        self.db.execute("update calls set state='done', last_error=null where id=?", (call_id,))

    def failed(self, call_id: int, error: str, due: float, park: bool) -> None:
        self.db.execute("update calls set attempts=attempts+1, last_error=?, due=?, state=? where id=?",
                        (error[:500], due, "parked" if park else "owed", call_id))

    def counts(self) -> dict[str, int]:
        return dict(self.db.execute("select state, count(*) from calls group by state").fetchall())
