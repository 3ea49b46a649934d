"""OS names for the engine's threads: Python 3.11 keeps a thread's name to
itself, so `top -H`, `ps -L` and `o2o bench load`'s CPU per thread would see
every thread of the process as "python"."""
from __future__ import annotations

import threading


def name_os_thread() -> None:
    """Gives the calling thread's Python name to its OS thread (Linux keeps 15
    bytes); elsewhere, or where /proc is not there, nothing happens."""
    name = threading.current_thread().name.encode()[:15]
    try:
        with open(f"/proc/self/task/{threading.get_native_id()}/comm", "wb") as f:
            f.write(name)
    except OSError:
        pass
