"""failwatch.cfg for a farm of simulated printers: one ``[printer NAME]`` section each."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sim.daemon_config import DEFAULTS, render

if TYPE_CHECKING:
    from sim.harness import SimPrinter


def farm_config_for(
    printers: Mapping[str, SimPrinter],
    path: Path,
    *,
    per_printer: Mapping[str, Mapping[str, Any]] | None = None,
    **overrides: dict[str, Any],
) -> Path:
    """Top-level defaults plus a printer section per SimPrinter (its Moonraker, predictor).

    ``per_printer`` adds or replaces options of one printer section (prefixed names,
    e.g. ``{"bad": {"detection_sensitivity": 2}}``); ``overrides`` are top-level
    section option dicts, as in :func:`sim.daemon_config.write_daemon_config`.
    """
    data_dir = path.parent
    sections: dict[str, dict[str, Any]] = {
        "camera": {"timeout": 2.0},
        "predictor": {"timeout": 5.0},
        "detection": dict(DEFAULTS["detection"]),
        "actions": dict(DEFAULTS["actions"]),
        "state": {"path": str(data_dir / "failwatch" / "state.json")},
        "logging": {"path": str(data_dir / "logs" / "failwatch.log"), **DEFAULTS["logging"]},
    }
    for section, options in overrides.items():
        sections.setdefault(section, {}).update(options)
    for name, printer in printers.items():
        options: dict[str, Any] = {
            "moonraker_url": printer.url,
            "moonraker_unix_socket": str(printer.mr.unix_socket),
            "predictor_url": printer.predictor.url,
            "predictor_serial_no": printer.serial_no,
            "predictor_access_token": printer.access_token,
        }
        if printer.api_key is not None:
            options["moonraker_api_key"] = printer.api_key
        options.update((per_printer or {}).get(name, {}))
        sections[f"printer {name}"] = options
    path.write_text(render(sections), encoding="utf-8")
    return path
