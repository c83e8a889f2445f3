"""Persistence of the watch state in one JSON file, written atomically.

A power cut on a Raspberry Pi must never leave a half-written file: the
state goes to a temporary file in the same folder, is fsynced, renamed over
the old one, and the folder is fsynced. A file that cannot be read is kept
aside (``.corrupt``) and the watch starts fresh rather than not at all.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

FORMAT_VERSION = 1


class StateStore:
    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path).expanduser()

    def load(self) -> dict[str, Any]:
        """The saved state, or {} if there is none or it is unreadable."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}
        except OSError as exc:
            log.warning("state: cannot read %s (%s); starting with fresh statistics",
                        self.path, exc)
            return {}
        try:
            data = json.loads(text)
            if not isinstance(data, dict):
                raise ValueError("not a JSON object")
        except ValueError as exc:
            aside = self.path.with_name(self.path.name + ".corrupt")
            log.warning(
                "state: %s is damaged (%s); kept as %s, starting with fresh statistics",
                self.path, exc, aside,
            )
            try:
                os.replace(self.path, aside)
            except OSError:
                pass
            return {}
        return data

    def save(self, data: dict[str, Any]) -> None:
        """Write ``data`` atomically; blocking, so call it off the event loop."""
        payload = dict(data)
        payload["version"] = FORMAT_VERSION
        text = json.dumps(payload, indent=1, sort_keys=True)
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
