"""Commands from the Mainsail/Fluidd macros, checked before anything changes.

The macros call the remote method ``failwatch_command`` with ``cmd`` and
``value``; values arrive as the strings the user typed. A bad command or
value is refused with a message that says what is allowed, and nothing is
changed. Pure code: the daemon applies what this module accepts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

REMOTE_METHOD = "failwatch_command"
STATE_MACRO = "_FAILWATCH_STATE"
COMMANDS = ("status", "enable", "disable", "ignore_print", "sensitivity", "test", "resume",
            "resume_ignore")
SENSITIVITY_RANGE = (0.1, 5.0)
#: What a refusal quotes of the user's text at most: a pasted page must not flood
#: the console and the log.
SHOWN_MAX = 40


def shown(text: str, limit: int = SHOWN_MAX) -> str:
    """The user's text, quoted and cut to ``limit`` characters."""
    if len(text) <= limit:
        return repr(text)
    return f"{text[:limit]!r}... ({len(text)} characters)"


@dataclass(frozen=True)
class Command:
    name: str
    value: float | None = None


class CommandError(ValueError):
    """Refused: the text says why and what is allowed."""


def parse_command(params: Any) -> Command:
    if not isinstance(params, dict):
        params = {}
    name = str(params.get("cmd", "status")).strip().lower()
    if name not in COMMANDS:
        raise CommandError(f"unknown command {shown(name)}; allowed: {', '.join(COMMANDS)}")
    if name != "sensitivity":
        return Command(name)
    raw = params.get("value", "")
    low, high = SENSITIVITY_RANGE
    try:
        value = float(str(raw).strip())
    except ValueError:
        value = math.nan
    if not (low <= value <= high):  # also refuses nan and inf
        got = shown(str(raw).strip() or "nothing")
        raise CommandError(
            f"FAILWATCH_SENSITIVITY VALUE must be a number from {low:g} to {high:g} "
            f"(1 = Obico's default, higher pauses sooner), got {got}; nothing changed")
    return Command(name, value)


@dataclass
class Settings:
    """What the user changed from the printer; persisted, it wins over failwatch.cfg."""

    enabled: bool = True
    sensitivity: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"enabled": self.enabled, "sensitivity": self.sensitivity}

    @classmethod
    def from_dict(cls, data: Any) -> Settings:
        if not isinstance(data, dict):
            return cls()
        sens = data.get("sensitivity")
        low, high = SENSITIVITY_RANGE
        if isinstance(sens, bool) or not isinstance(sens, (int, float)) or not low <= sens <= high:
            sens = None
        return cls(enabled=data.get("enabled") is not False,
                   sensitivity=None if sens is None else float(sens))
