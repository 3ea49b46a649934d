"""The engine's threads carry their names to the OS, and the benchmarks read
each thread's CPU by that name."""
import os
import threading
import time

from benchmarks.procstat import thread_cpu_seconds
from engine.threads import name_os_thread


def test_a_named_thread_is_seen_by_its_name_with_the_cpu_it_used():
    seen: dict[str, float] = {}

    def work() -> None:
        name_os_thread()
        end = time.thread_time() + 0.1
        while time.thread_time() < end:  # 0.1 s of this thread's CPU
            sum(range(1000))
        seen.update(thread_cpu_seconds(os.getpid()))
        seen["comm"] = open(f"/proc/self/task/{threading.get_native_id()}/comm").read().strip()  # type: ignore

    t = threading.Thread(target=work, name="o2o-test-busy-thread")  # longer than Linux's 15 bytes
    t.start()
    t.join()
    assert seen.pop("comm") == "o2o-test-busy-t"
    assert seen["o2o-test-busy-t"] >= 0.05  # 0.1 s, counted in clock ticks of 10 ms
    assert "main" in seen  # the process's first thread


def test_a_thread_not_named_keeps_the_process_name():
    names: list[str] = []
    t = threading.Thread(target=lambda: names.extend(thread_cpu_seconds(os.getpid())), name="unnamed-here")
    t.start()
    t.join()
    assert "unnamed-here" not in names
