"""``[printer NAME]`` sections: one failwatch process watching a print farm.

A config with at least one ``[printer NAME]`` section is a farm: each such
section is a printer, and the top-level ``[moonraker]``, ``[camera]``,
``[predictor]``, ``[detection]``, ``[actions]`` and ``[state]`` sections only
hold the defaults the printers inherit. In a printer section, an option of one
of those sections is written with the section's name in front, the way
KlipperScreen writes ``[printer NAME] moonraker_host``::

    [printer voron]
    moonraker_url: ws://voron.local:7125/websocket
    camera_snapshot_url: http://voron.local/webcam/?action=snapshot
    predictor_access_token: ...
    detection_sensitivity: 1.2

One rule, no exceptions: ``<section>_<option>``. Other sections ([logging] and
the like) apply to the whole process. Each printer keeps its own state file:
unless ``state_path`` is set, ``state.json`` becomes ``state-NAME.json``; its
recordings go to the subfolder NAME of ``[record] path``, and notifications
name it unless ``[notify] printer_name`` is set.

Validation reports what a printer actually uses: an inherited bad value once,
against the top-level section it is written in; an overridden one against the
printer section and its prefixed option name. A top-level value that every
printer overrides is not used and not checked.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from failwatch_moonraker import cfgfile
from failwatch_moonraker import config as _cfg
from failwatch_moonraker.cameras import build_cameras

OVERRIDABLE = ("moonraker", "camera", "predictor", "detection", "actions", "state")
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")

# Other tools' names for printer options (KlipperScreen, moonraker-obico), for hints.
_EXTRA_ALIASES = {
    "moonraker_host": "moonraker_url",
    "moonraker_port": "moonraker_url",
    "host": "moonraker_url",
    "snapshot": "camera_snapshot_url",
    "webcam": "camera_webcam",
    "backend": "predictor_backend",
}


def is_printer_section(name: str) -> bool:
    return name.split(None, 1)[0].lower() == "printer" if name.strip() else False


def printer_sections(data: Iterable[str]) -> list[str]:
    """The ``[printer ...]`` section names, in file order."""
    return [name for name in data if is_printer_section(name)]


def per_printer_path(path: str, name: str) -> str:
    """``.../state.json`` -> ``.../state-NAME.json``."""
    p = Path(path)
    return str(p.with_name(f"{p.stem}-{name}{p.suffix}"))


class _PrinterSection(cfgfile.Section):
    """A top-level section as one printer sees it: its prefixed overrides on top."""

    def __init__(
        self,
        printer_section: str,
        name: str,
        base: Mapping[str, str] | None,
        overrides: Mapping[str, str],
        problems: Any,
    ) -> None:
        merged = {**(base or {}), **overrides}
        super().__init__(name, merged, problems, _cfg.SECRET_OPTIONS.get(name, ()))
        self.printer_section = printer_section
        # A problem belongs to the printer when the option is set there, or is needed
        # there and set nowhere (e.g. its backend's credentials); else to the section.
        self.own = frozenset(overrides)
        self._inherited = frozenset(base or ())

    def error(self, option: str, message: str) -> None:
        self._failed.add(option)
        messages = self._problems.messages
        before = len(messages)
        if option not in self._inherited or option in self.own:
            self._problems.option(self.printer_section, f"{self.name}_{option}", message)
        else:
            self._problems.option(self.name, option, message)
        if messages[-1] in messages[:before]:
            messages.pop()  # an inherited problem, already reported for another printer


def _unknown_message(option: str, known: list[str]) -> str:
    head = option.split("_", 1)[0]
    if head in _cfg.BUILDERS and head not in OVERRIDABLE:
        return (f"unknown option; [{head}] applies to every printer and cannot be set in a "
                "printer section")
    aliases = dict(_EXTRA_ALIASES)
    for full in known:
        aliases.setdefault(full.split("_", 1)[1], full)
    guess = cfgfile.hint(option, known, aliases)
    if guess is not None:
        return f"unknown option; did you mean '{guess}'?"
    return ("unknown option; a printer section takes the options of "
            f"{', '.join(f'[{s}]' for s in OVERRIDABLE)} with the section name in front, "
            "e.g. moonraker_url, camera_snapshot_url, predictor_access_token")


def secret_options() -> frozenset[str]:
    """The prefixed names of secret options, for scrubbing messages."""
    return frozenset(f"{s}_{o}" for s, options in _cfg.SECRET_OPTIONS.items()
                     if s in OVERRIDABLE for o in options)


def top_sink(section: str, farm: list[str], problems: Any) -> Any:
    """Where a top-level section reports: nowhere for farm defaults (see module doc)."""
    if farm and section in OVERRIDABLE:
        return cfgfile.Problems(problems.path)
    return problems


def build_printers(
    data: Mapping[str, Mapping[str, str]],
    farm: list[str],
    config: _cfg.Config,
    path: str,
    problems: Any,
) -> _cfg.Config:
    """``config`` with one complete per-printer :class:`Config` per printer section."""
    printers: list[_cfg.Config] = []
    names: dict[str, str] = {}
    urls: dict[str, str] = {}
    states: dict[str, str] = {}
    for section in farm:
        parts = section.split(None, 1)
        name = parts[1].strip() if len(parts) > 1 else ""
        if not name:
            problems.section(section, "a printer section needs a name, e.g. [printer voron]")
            continue
        if not NAME_RE.fullmatch(name):
            problems.section(section, "the printer name must be one word of letters, digits, "
                             "'-', '_' or '.' (at most 64 characters), e.g. [printer voron_2.4]")
            continue
        if name.lower() in names:
            problems.section(section, f"the name {name!r} is already used by "
                             f"[{names[name.lower()]}]")
            continue
        names[name.lower()] = section
        options = data[section]
        overrides: dict[str, dict[str, str]] = {s: {} for s in OVERRIDABLE}
        for option, value in options.items():
            for s in OVERRIDABLE:
                if option.startswith(s + "_"):
                    overrides[s][option[len(s) + 1:]] = value
                    break
        ctx = cfgfile.Context(path)
        built: dict[str, Any] = {}
        known: list[str] = []
        for s in OVERRIDABLE:
            sec = _PrinterSection(section, s, data.get(s), overrides[s], problems)
            built[s] = _cfg.BUILDERS[s](sec, ctx)
            if s == "camera":  # camera_webcams: several cameras
                built["cameras"] = build_cameras({}, sec, built[s], path, problems)
            known += [f"{s}_{o}" for o in sec.known]
        if "path" not in overrides["state"]:
            built["state"] = _cfg.StateConfig(path=per_printer_path(built["state"].path, name))
        for option in options:
            if option not in known:
                problems.option(section, option, _unknown_message(option, known))
        url = built["moonraker"].url
        if url in urls:
            problems.option(section, "moonraker_url", f"{url} is already watched by "
                            f"[{urls[url]}]; each printer needs its own Moonraker")
        urls.setdefault(url, section)
        state = built["state"].path
        if state in states:
            problems.option(section, "state_path", f"{state} is already the state file of "
                            f"[{states[state]}]; each printer needs its own")
        states.setdefault(state, section)
        printer = dataclasses.replace(config, name=name, printers=(), **built)
        printers.append(_own_folders(_named_notifications(printer, name, data), name))
    return dataclasses.replace(config, printers=tuple(printers))


def _own_folders(printer: _cfg.Config, name: str) -> _cfg.Config:
    """Recordings are named by Moonraker's job id, which every printer counts on its own
    (000001, 000002, ...): each printer records into a subfolder NAME of [record] path.
    The annotated snapshots likewise: one folder each, so each printer's retention caps
    apply to its own pictures."""
    changes: dict[str, Any] = {}
    for section in ("record", "snapshots"):
        value = getattr(printer, section, None)
        if value is not None and value.path:
            changes[section] = dataclasses.replace(value, path=str(Path(value.path) / name))
    return dataclasses.replace(printer, **changes)


def _named_notifications(printer: _cfg.Config, name: str,
                         data: Mapping[str, Mapping[str, str]]) -> _cfg.Config:
    """Notifications name the farm printer unless [notify] printer_name says otherwise."""
    notify = getattr(printer, "notify", None)
    if notify is None or not hasattr(notify, "printer_name"):
        return printer
    if (data.get("notify") or {}).get("printer_name", "").strip():
        return printer
    return dataclasses.replace(printer, notify=dataclasses.replace(notify, printer_name=name))
