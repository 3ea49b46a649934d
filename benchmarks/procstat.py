"""A process's memory and CPU as Linux reports them in /proc, for the
benchmarks' figures (this process, or a child being measured)."""
from __future__ import annotations

import os
import resource
from pathlib import Path


def memory_bytes(field: str, pid: int | str = "self") -> int:
    """VmHWM (peak) or VmRSS (now), in bytes. Not ru_maxrss: Linux keeps the
    parent's peak in it across fork and exec."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:  # not Linux: this process's peak is all there is
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith(f"{field}:"))) * 1024


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process so far."""
    return _cpu(Path(f"/proc/{pid}/stat").read_text())


def _cpu(stat: str) -> float:
    """User + system CPU from a /proc stat line (its name may hold spaces and parentheses)."""
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def thread_cpu_seconds(pid: int) -> dict[str, float]:
    """User + system CPU of each of a process's threads so far, by the
    thread's OS name (engine.threads), threads of one name summed; the
    process's first thread (the event loop of `o2o serve`) as "main"."""
    out: dict[str, float] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            stat = (task / "stat").read_text()
        except OSError:  # it ended meanwhile
            continue
        name = "main" if task.name == str(pid) else stat[stat.index("(") + 1:stat.rindex(")")]
        out[name] = out.get(name, 0.0) + _cpu(stat)
    return out


def children(pid: int) -> list[int]:
    """The processes `pid`'s threads started and that still run (`o2o serve`'s relay)."""
    return [int(c) for task in Path(f"/proc/{pid}/task").iterdir() for c in (task / "children").read_text().split()]
