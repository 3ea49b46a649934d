"""Who owns a partition: a lease in a NATS KV bucket (docs/scale-out.md).

One key per partition. `create()` acquires (it succeeds only when the key
is absent or deleted); `update(last=revision)` renews (compare-and-set:
refused once anyone else wrote the key); the bucket's TTL (the stream's
max_age) drops a lease not renewed in time, so a standby's `create()` then
wins. The revision at acquisition is the *fencing epoch*: strictly greater
for every later owner.

A refused renewal means another process owns the partition now: stop
writing it at once. A renewal that times out (a KV leader election takes
5-7 s, SCALEOUT.md 1.5) means carry on: the lease may still be ours, and
the store's fence protects the data if it is not. The lease gives liveness
only; safety comes from the store.
"""
from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from dataclasses import dataclass, replace
from typing import Awaitable, Callable, Iterable

import msgspec
import nats.errors
import nats.js.errors
from nats.js.api import KeyValueConfig, StorageType

from engine.threads import name_os_thread

log = logging.getLogger("o2o.leases")

WRONG_LAST_SEQUENCE = (10071, 10164)  # JetStream's "wrong last sequence" error codes
# a write no stream took: nothing was stored, so it is safe to try again
NOT_STORED = (nats.errors.NoRespondersError, nats.js.errors.NoStreamResponseError)
CREATE_RETRY_S = 2.0  # how long acquire tries again after NOT_STORED (a bucket just created, CI 2026-12-07)
# what a KV write meets while the bucket's stream elects a leader (tests/adapters/test_leases.py kills one):
# not a refusal, so the lease may still be ours
NO_ANSWER = (nats.errors.TimeoutError, asyncio.TimeoutError, *NOT_STORED, nats.js.errors.ServiceUnavailableError)


class LeaseLost(Exception):
    """A renewal or release was refused: the partition has another owner (or none)."""

    def __init__(self, partition: str, reason: str):
        super().__init__(f"lease of partition {partition!r} lost: {reason}")
        self.partition = partition
        self.reason = reason


class Holder(msgspec.Struct, frozen=True):
    """The value stored under a partition's key."""

    owner: str
    epoch: int = 0  # 0 in the acquiring write: its own revision is the epoch
    renewed_at: float = 0.0  # wall clock, for `o2o cluster status` only


@dataclass(frozen=True)
class Lease:
    partition: str
    owner: str
    epoch: int  # the revision that acquired it: the fencing epoch
    revision: int  # the latest write, which the next renewal must match


@dataclass(frozen=True)
class HeldBy:
    partition: str
    owner: str
    epoch: int
    revision: int
    renewed_at: float

    def expires_in(self, ttl_s: float, now: float | None = None) -> float:
        return self.renewed_at + ttl_s - (time.time() if now is None else now)


_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(Holder).decode


class LeaseBucket:
    """The leases of every partition, in one KV bucket."""

    def __init__(self, kv, ttl_s: float):
        self.kv = kv
        self.ttl_s = ttl_s

    @classmethod
    async def open(cls, js, bucket: str = "o2o-leases", ttl_s: float = 12.0, replicas: int = 3) -> "LeaseBucket":
        """Binds the bucket, creating it (history 1, file storage) when it is missing."""
        try:
            kv = await js.key_value(bucket)
        except nats.js.errors.BucketNotFoundError:
            kv = await js.create_key_value(KeyValueConfig(bucket=bucket, history=1, ttl=ttl_s, replicas=replicas,
                                                          storage=StorageType.FILE))
        ttl = (await kv.status()).ttl or ttl_s
        if abs(ttl - ttl_s) > 1e-3:  # the bucket decides; say so rather than renew on the wrong clock
            log.warning("lease bucket %s has TTL %.1f s, not the %.1f s configured: using the bucket's", bucket, ttl,
                        ttl_s)
        return cls(kv, ttl)

    async def acquire(self, partition: str, owner: str) -> Lease | None:
        """The lease, if nobody holds it; None if someone does."""
        try:
            revision = await self._create(partition, _encode(Holder(owner, 0, time.time())))
        except nats.js.errors.KeyWrongLastSequenceError:
            return None
        except nats.js.errors.KeyNotFoundError:  # held when tried, lapsed before nats-py looked again: next time
            return None
        return Lease(partition, owner, revision, revision)

    async def _create(self, key: str, value: bytes) -> int:
        """kv.create, tried again while the write is NOT_STORED (a timeout is
        not safe to repeat): a bucket just created can answer so until every
        server knows where its stream's leader is."""
        deadline = time.monotonic() + CREATE_RETRY_S
        while True:
            try:
                return await self.kv.create(key, value)
            except NOT_STORED:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.05)

    async def renew(self, lease: Lease) -> Lease:
        """Raises LeaseLost when refused; a timeout (nats.errors.TimeoutError) is left to the caller: carry on."""
        try:
            revision = await self.kv.update(lease.partition, _encode(Holder(lease.owner, lease.epoch, time.time())),
                                            last=lease.revision)
        except nats.js.errors.KeyWrongLastSequenceError:
            raise LeaseLost(lease.partition, f"renewal of epoch {lease.epoch} refused (lapsed or taken over)") from None
        return replace(lease, revision=revision)

    async def release(self, lease: Lease) -> None:
        """Lets a standby take over at once instead of after the TTL; refused if the lease is no longer ours."""
        try:
            await self.kv.delete(lease.partition, last=lease.revision)
        except nats.js.errors.APIError as e:
            if e.err_code in WRONG_LAST_SEQUENCE:
                raise LeaseLost(lease.partition, "release refused: no longer ours") from None
            raise

    async def holder(self, partition: str) -> HeldBy | None:
        try:
            entry = await self.kv.get(partition)
        except nats.js.errors.KeyNotFoundError:
            return None
        value = _decode(entry.value)
        return HeldBy(partition, value.owner, value.epoch or entry.revision, entry.revision, value.renewed_at)

    async def holders(self) -> dict[str, HeldBy]:
        """Every partition currently held."""
        try:
            keys = await self.kv.keys()
        except nats.js.errors.NoKeysError:
            return {}
        out = {}
        for key in keys:
            held = await self.holder(key)
            if held:
                out[key] = held
        return out


Callback = Callable[[Lease], Awaitable[None] | None]


class LeaseKeeper:
    """Keeps the leases of the partitions one process wants: acquires those
    free (a standby keeps trying), renews those held every TTL/6: a lease then
    outlives a KV leader election shorter than 5/6 of the TTL (one took
    5.3-7.3 s here: benchmarks/README.md).
    `on_acquired(lease)` runs when one is won (fence, load, then serve);
    `on_lost(lease)` when a renewal is refused (stop writing it now)."""

    def __init__(self, bucket: LeaseBucket, owner: str, partitions: Iterable[str],
                 on_acquired: Callback | None = None, on_lost: Callback | None = None, every_s: float | None = None,
                 standby: Iterable[str] = ()):
        self.bucket, self.owner = bucket, owner
        self.standby = tuple(p for p in standby if p not in tuple(partitions))
        self.wanted = tuple(partitions) + self.standby
        self._free_since: dict[str, float] = {}
        self._started = time.monotonic()
        self.on_acquired, self.on_lost = on_acquired, on_lost
        self.every_s = every_s or bucket.ttl_s / 6
        self.held: dict[str, Lease] = {}
        self.timeouts = 0  # renewals that timed out (carried on)
        self._task: asyncio.Task | None = None

    async def tick(self) -> None:
        """One round: renew what is held, try to acquire the rest."""
        for partition in self.wanted:
            lease = self.held.get(partition)
            try:
                if lease is None:
                    if partition in self.standby and not (len(self.held) >= len(self.wanted) - len(self.standby)
                                                          and await self._vacant(partition)):
                        continue  # its own partitions first, then only one whose engine is gone
                    won = await self.bucket.acquire(partition, self.owner)
                    if won:
                        self.held[partition] = won
                        log.info("acquired partition %s, epoch %d", partition, won.epoch)
                        await _call(self.on_acquired, won)
                else:
                    self.held[partition] = await self.bucket.renew(lease)
            except LeaseLost as e:
                del self.held[partition]
                log.warning("%s: stop writing it", e)
                await _call(self.on_lost, lease)
            except NO_ANSWER:
                self.timeouts += 1  # carry on: the fence protects the data if the lease is gone
                log.warning("lease of partition %s: no answer from the KV bucket, carrying on", partition)

    async def _vacant(self, partition: str) -> bool:
        """A standby takes a partition once this keeper has run for a TTL (an
        engine started beside it wins its own partition first) and it has seen
        the partition without a holder a renewal period ago and still."""
        now = time.monotonic()
        if now - self._started < self.bucket.ttl_s or await self.bucket.holder(partition) is not None:
            self._free_since.pop(partition, None)
            return False
        since = self._free_since.setdefault(partition, now)
        return now - since >= self.every_s * 0.9

    async def run(self) -> None:
        while True:
            await self.tick()
            await asyncio.sleep(self.every_s)

    async def give_back(self, partition: str) -> None:
        """Hands a held lease back (this engine could not take the partition
        over); it is wanted still, so a later round tries for it again."""
        lease = self.held.pop(partition, None)
        if lease is None:
            return
        try:
            await self.bucket.release(lease)
        except (LeaseLost, *NO_ANSWER) as e:  # lapses after the TTL instead
            log.warning("release of partition %s: %s", partition, e)

    def start(self) -> "LeaseKeeper":
        self._task = asyncio.get_running_loop().create_task(self.run(), name=f"leases-{self.owner}")
        return self

    async def stop(self, release: bool = True) -> None:
        """Stops renewing; `release` hands the leases back so a standby need not wait for the TTL."""
        if self._task:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        if release:
            for lease in list(self.held.values()):
                try:
                    await self.bucket.release(lease)
                except (LeaseLost, *NO_ANSWER) as e:
                    log.warning("release of partition %s: %s", lease.partition, e)
        self.held.clear()


async def _call(callback: Callback | None, lease: Lease) -> None:
    if callback is not None:
        result = callback(lease)
        if asyncio.iscoroutine(result):
            await result


class Held:
    """What `o2o serve --partitions` holds: a LeaseKeeper on an event loop and
    NATS connection of its own, in a thread. The engine's loop blocks for
    seconds at a time (building the engine, a big batch); renewals must not
    wait for it, or a short lease lapses while the process is alive. A
    process that stops as a whole (kill -9, SIGSTOP) stops renewing: that is
    what a standby must see. Each lease won or lost is put on `changes` as
    ("take", partition, epoch) or ("drop", partition, epoch), for the
    serving side to act on; a lost partition is wanted again (standing by)."""

    def __init__(self, config, names: list[str], owner: str, standby: list[str] = ()):
        self.config, self.names, self.owner, self.standby = config, names, owner, list(standby)
        self.changes: queue.SimpleQueue[tuple[str, str, int]] = queue.SimpleQueue()
        self._given_back: queue.SimpleQueue[str] = queue.SimpleQueue()
        self.failed: BaseException | None = None
        self.keeper: LeaseKeeper | None = None
        self.ttl_s = 0.0
        self._stopping = threading.Event()
        self._release = True
        self._thread = threading.Thread(target=self._run, name="o2o-leases", daemon=True)

    def start(self) -> "Held":
        self._thread.start()
        return self

    def _run(self) -> None:
        name_os_thread()
        try:
            asyncio.run(self._keep())
        except BaseException as e:  # noqa: BLE001 - the serving side reports it
            self.failed = e

    async def _keep(self) -> None:
        from adapters.nats_connection import connect

        settings = self.config.partitions
        nc = await connect(self.config.nats, self.config.nats.url)
        try:
            bucket = await LeaseBucket.open(nc.jetstream(), settings.lease_bucket, settings.lease_ttl_s,
                                            settings.lease_replicas)
            self.ttl_s = bucket.ttl_s
            self.keeper = LeaseKeeper(bucket, self.owner, self.names, standby=self.standby,
                                      on_acquired=lambda lease: self.changes.put(("take", lease.partition, lease.epoch)),
                                      on_lost=lambda lease: self.changes.put(("drop", lease.partition, lease.epoch)))
            while not self._stopping.is_set():
                while not self._given_back.empty():
                    await self.keeper.give_back(self._given_back.get_nowait())
                await self.keeper.tick()
                for _ in range(max(1, round(self.keeper.every_s / 0.05))):  # wake soon when asked to stop
                    if self._stopping.is_set():
                        break
                    await asyncio.sleep(0.05)
            await self.keeper.stop(release=self._release)
        finally:
            await nc.close()

    def take_changes(self) -> list[tuple[str, str, int]]:
        out = []
        while True:
            try:
                out.append(self.changes.get_nowait())
            except queue.Empty:
                return out

    def give_back(self, partition: str) -> None:
        """The serving side could not take `partition` over: its lease goes
        back to the bucket and is tried for again (from the keeper's thread)."""
        self._given_back.put(partition)

    async def release(self, release: bool = True) -> None:
        """Stops renewing and hands back the leases still held (a standby need not wait for the TTL)."""
        self._release = release
        self._stopping.set()
        await asyncio.get_running_loop().run_in_executor(None, self._thread.join, 30)


def owner_name() -> str:
    import os
    import socket

    return f"{socket.gethostname()}-{os.getpid()}"


async def hold_partitions(config, names: Iterable[str], stop: asyncio.Event, say=print,
                          standby: Iterable[str] = ()) -> tuple[Held, dict[str, int]] | None:
    """Stands by until this process holds the lease of at least one of the
    partitions named, then keeps renewing them and trying for the rest (in
    a thread: see Held). Returns it with the partitions held so far and
    their epochs; None if `stop` is set first. The names are checked
    against the configuration's partition map (InvalidInput naming `--partitions`).
    `standby`: partitions it takes over when their lease lapses (their own
    engine died), tried after the named ones are held and a TTL after start."""
    from domain.errors import InvalidInput
    from engine.partitions import partition_map
    from engine.store.network_file import load_network

    known = partition_map(load_network(config.network.file), config.partitions).names

    def checked(given: Iterable[str], field: str, required: bool) -> list[str]:
        listed = [n.strip() for n in given if n.strip()]
        unknown = [n for n in listed if n not in known]
        if unknown or (required and not listed):
            raise InvalidInput(field, f"no partition {', '.join(map(repr, unknown)) or 'named'} "
                                      f"(partitions: {', '.join(known)})")
        return listed

    wanted = checked(names, "--partitions", True)
    spare = checked(standby, "--standby", False)
    if not config.nats.url:
        raise InvalidInput("--partitions", "leases live in a NATS cluster: name it with --nats")
    held = Held(config, wanted, owner_name(), spare).start()
    say(f"standing by for partition(s) {', '.join(wanted)} as {held.owner} "
        f"(lease TTL {config.partitions.lease_ttl_s:g} s)")
    taken: dict[str, int] = {}
    while not taken:
        if held.failed is not None:
            raise held.failed
        if stop.is_set():
            await held.release()
            return None
        try:
            await asyncio.wait_for(stop.wait(), 0.1)
        except asyncio.TimeoutError:
            pass
        for change, partition, epoch in held.take_changes():
            if change == "take":
                taken[partition] = epoch
            else:
                taken.pop(partition, None)
    say("holding " + ", ".join(f"{p} (epoch {e})" for p, e in sorted(taken.items())))
    return held, taken
