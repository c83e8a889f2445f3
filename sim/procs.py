"""Processes as a user sees them in ``ps``: a daemon's children, their memory and CPU.

For the tests and the benchmark of local engines (Linux /proc only).
"""

from __future__ import annotations

import os


def _stat(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as handle:
            text = handle.read()
    except OSError:
        return None
    name_end = text.rfind(")")
    return [text[text.find("(") + 1:name_end], *text[name_end + 2:].split()]


def children(pid: int, name_prefix: str = "") -> list[int]:
    """Live children of ``pid`` (whose command name starts with ``name_prefix``)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        fields = _stat(int(entry))
        # fields: [comm, state, ppid, ...]; zombies are gone as far as a user cares
        if fields and fields[2] == str(pid) and fields[1] != "Z" and \
                fields[0].startswith(name_prefix):
            found.append(int(entry))
    return sorted(found)


def rss_mb(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as handle:
            for line in handle:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of ``pid`` so far."""
    fields = _stat(pid)
    if not fields:
        return None
    tick = os.sysconf("SC_CLK_TCK")
    return (int(fields[12]) + int(fields[13])) / tick


def nice_of(pid: int) -> int | None:
    fields = _stat(pid)
    return int(fields[17]) if fields else None
