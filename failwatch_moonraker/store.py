"""Persistence of the watch state in one JSON file, written atomically.

A power cut on a Raspberry Pi must never leave a half-written file: the
state goes to a temporary file in the same folder, is fsynced, renamed over
the old one, and the folder is fsynced. Temporary files a kill left behind are
removed at start-up.

A damaged file never stops the daemon and is never lost: one that cannot be
read (not UTF-8, not JSON, nested too deep) or holds invalid values (the
caller says which, :meth:`StateStore.keep_damaged`) is kept as
``<name>.corrupt-<UTC time>``, never over an earlier kept copy, the log says
which copy was kept and what was reset, and watching starts. Nothing
non-finite is ever written (``allow_nan=False``).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
MAX_STATE_BYTES = 16 * 1024 * 1024  # a state file is a few KiB; beyond this it is not ours


class StateStore:
    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path).expanduser()

    def load(self) -> dict[str, Any]:
        """The saved state, or {} if there is none or it is unreadable (then kept aside)."""
        self.remove_temporary()
        try:
            with open(self.path, "rb") as handle:
                raw = handle.read(MAX_STATE_BYTES + 1)
        except FileNotFoundError:
            return {}
        except OSError as exc:
            log.warning("state: cannot read %s (%s); starting with fresh statistics",
                        self.path, exc.strerror or exc)
            return {}
        try:
            if len(raw) > MAX_STATE_BYTES:
                raise ValueError(f"larger than {MAX_STATE_BYTES // (1024 * 1024)} MiB")
            data = json.loads(raw.decode("utf-8"))
            if not isinstance(data, dict):
                raise ValueError("not a JSON object")
        except RecursionError:
            self._keep("JSON nested too deep", "all statistics and settings", move=True)
            return {}
        except ValueError as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
            reason = "not UTF-8 text" if isinstance(exc, UnicodeDecodeError) else str(exc)
            self._keep(reason[:200], "all statistics and settings", move=True)
            return {}
        return data

    def keep_damaged(self, problems: Iterable[str]) -> Path | None:
        """The file loaded but held invalid values (reset by the caller): keep a copy."""
        names = ", ".join(problems)
        return self._keep("invalid values", names or "invalid values", move=False)

    def _keep(self, reason: str, reset: str, *, move: bool) -> Path | None:
        aside = self._aside_name()
        try:
            if move:
                os.replace(self.path, aside)  # same folder: atomic, never over an older copy
            else:
                shutil.copy2(self.path, aside)
        except OSError as exc:
            log.error("state: %s is damaged (%s) and cannot be kept aside (%s); reset %s, "
                      "watching goes on", self.path, reason, exc.strerror or exc, reset)
            return None
        log.warning("state: %s is damaged (%s); kept as %s; reset %s; watching goes on",
                    self.path, reason, aside, reset)
        return aside

    def _aside_name(self) -> Path:
        """``<name>.corrupt-<UTC time>``, with a counter when that name is taken."""
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        base = self.path.with_name(f"{self.path.name}.corrupt-{stamp}")
        candidate, n = base, 1
        while candidate.exists():
            candidate = base.with_name(f"{base.name}-{n}")
            n += 1
        return candidate

    def remove_temporary(self) -> list[Path]:
        """Delete ``<name>.*.tmp`` files a kill left in the middle of a save."""
        removed: list[Path] = []
        try:
            leftovers = list(self.path.parent.glob(f"{self.path.name}.*.tmp"))
        except OSError:
            return removed
        for tmp in leftovers:
            try:
                tmp.unlink()
            except OSError:
                continue
            removed.append(tmp)
        if removed:
            log.info("state: removed %d temporary file(s) left by an interrupted save",
                     len(removed))
        return removed

    def save(self, data: dict[str, Any]) -> None:
        """Write ``data`` atomically; blocking, so call it off the event loop.

        Raises ValueError (before touching the disk) if ``data`` holds a NaN or infinity.
        """
        payload = dict(data)
        payload["version"] = FORMAT_VERSION
        text = json.dumps(payload, indent=1, sort_keys=True, allow_nan=False)
        folder = self.path.parent
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=self.path.name + ".", suffix=".tmp", dir=folder)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise
        try:
            dir_fd = os.open(folder, os.O_RDONLY)
        except OSError:
            return
        try:
            os.fsync(dir_fd)
        except OSError:
            pass
        finally:
            os.close(dir_fd)


def state_problems(saved: dict[str, Any]) -> list[str]:
    """Top-level parts of a loaded state that are there but not what they should be.

    The session's own values are checked by ``WatchSession.from_dict``.
    """
    problems: list[str] = []
    session = saved.get("session")
    if session is not None and not isinstance(session, dict):
        problems.append("session (not an object)")
    settings = saved.get("settings")
    if settings is not None:
        if not isinstance(settings, dict):
            problems.append("settings (not an object)")
        else:
            from failwatch_moonraker.printer.control import SENSITIVITY_RANGE

            sens = settings.get("sensitivity")
            low, high = SENSITIVITY_RANGE
            if sens is not None and (isinstance(sens, bool) or not isinstance(sens, (int, float))
                                     or not low <= sens <= high):
                problems.append("settings.sensitivity")
            if settings.get("enabled") not in (None, True, False):
                problems.append("settings.enabled")
    return problems
