"""failwatch.cfg for a simulated printer, for the integration tests and the demo."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sim.harness import SimPrinter


DEFAULTS: dict[str, dict[str, Any]] = {
    "detection": {"interval": 0.2, "safe_frames": 3, "warning_cooldown": 300,
                  "resume_cooldown": 90},
    "actions": {"on_failure": "pause, heaters_off, notify"},
    "logging": {"level": "DEBUG"},
}


def render(sections: dict[str, dict[str, Any]]) -> str:
    lines: list[str] = []
    for name, options in sections.items():
        lines.append(f"[{name}]")
        for key, value in options.items():
            if isinstance(value, bool):
                value = "true" if value else "false"
            lines.append(f"{key}: {value}")
        lines.append("")
    return "\n".join(lines)


def write_daemon_config(
    path: Path,
    *,
    moonraker_url: str,
    predictor_url: str,
    data_dir: Path,
    serial_no: str,
    access_token: str,
    snapshot_url: str = "",
    api_key: str | None = None,
    unix_socket: str = "",
    **overrides: dict[str, Any],
) -> Path:
    """Write a complete config; ``overrides`` are per-section option dicts."""
    sections: dict[str, dict[str, Any]] = {
        "moonraker": {"url": moonraker_url, "unix_socket": unix_socket},
        "camera": {"snapshot_url": snapshot_url, "timeout": 2.0},
        "predictor": {"url": predictor_url, "serial_no": serial_no,
                      "access_token": access_token, "timeout": 5.0},
        "detection": dict(DEFAULTS["detection"]),
        "actions": dict(DEFAULTS["actions"]),
        "state": {"path": str(data_dir / "failwatch" / "state.json")},
        "logging": {"path": str(data_dir / "logs" / "failwatch.log"),
                    **DEFAULTS["logging"]},
    }
    if api_key is not None:
        sections["moonraker"]["api_key"] = api_key
    for section, options in overrides.items():
        sections.setdefault(section, {}).update(options)
    path.write_text(render(sections), encoding="utf-8")
    return path


def config_for(printer: SimPrinter, path: Path, *, with_api_key: bool = True,
               **overrides: dict[str, Any]) -> Path:
    """A config that watches ``printer``: its Moonraker, its webcam list, its predictor."""
    return write_daemon_config(
        path,
        moonraker_url=printer.url,
        predictor_url=printer.predictor.url,
        data_dir=path.parent,
        serial_no=printer.serial_no,
        access_token=printer.access_token,
        api_key=printer.api_key if with_api_key else None,
        unix_socket=str(printer.mr.unix_socket),
        **overrides,
    )


def seed_established_printer(cfg_dir: Path, *, frames: int = 7200, long_mean: float = 0.02,
                             cameras: Sequence[str] = ()) -> None:
    """Give the state file a printer with a lifetime of quiet frames behind it (each of
    the named ``cameras``, else the single camera).

    Obico's long mean is the printer's noise baseline; on a brand-new printer it
    rises with the failure itself and detection is slower (obico.md 1.5).
    """
    path = cfg_dir / "failwatch" / "state.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    stats = {"rolling_mean_long": long_mean, "prediction_num_lifetime": frames}
    session: dict[str, Any] = {"stats": stats}
    if cameras:
        session = {"cameras": {name: {"stats": dict(stats)} for name in cameras}}
    path.write_text(json.dumps({"session": session}), encoding="utf-8")
