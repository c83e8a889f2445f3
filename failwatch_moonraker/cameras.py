"""Several cameras per printer: ``[camera NAME]`` sections and ``[camera] webcams``.

``[camera]`` alone is one unnamed camera, as always. A printer with more
cameras names them, either as sections::

    [camera nozzle]
    snapshot_url: http://127.0.0.1:8081/?action=snapshot
    mask: 0,0,0.2,0.15

    [camera bed]
    webcam: bed-cam

or, when Moonraker already lists them, in one line: ``[camera] webcams:
nozzle, bed`` (each named after its Moonraker webcam). Then ``[camera]`` only
holds the defaults the named cameras inherit: ``timeout``, ``max_size`` and
the like. What belongs to one view (its URL or webcam, orientation and mask) is
never inherited. A ``[camera NAME]`` without ``snapshot_url`` or ``webcam``
uses the Moonraker webcam called NAME.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from typing import Any

from failwatch_moonraker import cfgfile
from failwatch_moonraker import config as _cfg
from failwatch_moonraker.camera.snapshot import (
    CameraSource,
    pick_webcam,
    resolve_url,
    source_from_webcam,
    web_base_from_moonraker,
)

NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
NAME_RULE = ("one word of letters, digits, '-', '_' or '.' (at most 64 characters), "
             "e.g. [camera nozzle]")
#: One camera's own options: a named camera does not take them from [camera].
OWN_OPTIONS = frozenset({"snapshot_url", "webcam", "webcams", "mask", "flip_horizontal",
                         "flip_vertical", "rotation"})


def is_camera_section(name: str) -> bool:
    """``[camera NAME]``, not ``[camera]`` itself."""
    parts = name.split(None, 1)
    return len(parts) == 2 and parts[0].lower() == "camera"


def camera_sections(data: Mapping[str, Any]) -> list[str]:
    return [name for name in data if is_camera_section(name)]


class _NamedCameraSection(cfgfile.Section):
    """A ``[camera NAME]`` with the inherited ``[camera]`` defaults underneath. A bad
    inherited value is reported once, against ``[camera]``, not again here."""

    def __init__(self, section: str, base: Mapping[str, str] | None,
                 own: Mapping[str, str], problems: Any) -> None:
        inherited = {k: v for k, v in (base or {}).items() if k not in OWN_OPTIONS}
        super().__init__(section, {**inherited, **own}, problems)
        self._own = frozenset(own)

    def error(self, option: str, message: str) -> None:
        self._failed.add(option)
        if option in self._own:
            self._problems.option(self.name, option, message)


def build_cameras(data: Mapping[str, Mapping[str, str]], camera: cfgfile.Section,
                  base: _cfg.CameraConfig, path: str, problems: Any, *,
                  sections_allowed: bool = True) -> tuple[_cfg.CameraConfig, ...]:
    """The named cameras (empty: the single ``[camera]``)."""
    webcams = camera.getlist("webcams", (), kind="webcam")
    where = camera.name
    for option in ("snapshot_url", "webcam"):
        if webcams and _given(camera, option):
            camera.error("webcams", f"cannot be used together with {option} in [{where}]: "
                         "either name the Moonraker webcams to watch here, or give one "
                         f"camera's {option}")
    if webcams and _given(camera, "mask"):
        camera.error("mask", "not used with webcams (each camera's view is its own): name "
                     "the cameras with [camera NAME] sections instead, each with its own mask")
    cameras: list[_cfg.CameraConfig] = []
    names: dict[str, str] = {}
    for webcam in webcams:
        if not NAME_RE.fullmatch(webcam):
            camera.error("webcams", f"the webcam name {cfgfile.show(webcam)} cannot name a "
                         f"camera: it must be {NAME_RULE.split(', e.g.')[0]}")
            continue
        names[webcam.lower()] = f"[{where}] webcams"
        cameras.append(dataclasses.replace(base, name=webcam, webcam=webcam, snapshot_url="",
                                           flip_horizontal=None, flip_vertical=None,
                                           rotation=None, mask=()))
    sections = camera_sections(data)
    if sections and not sections_allowed:
        for section in sections:
            problems.section(section, "in a farm, a printer's cameras are named with "
                             "camera_webcams in its [printer NAME] section")
        return tuple(cameras)
    ctx = cfgfile.Context(path)
    for section in sections:
        name = section.split(None, 1)[1].strip()
        if not NAME_RE.fullmatch(name):
            problems.section(section, f"the camera name must be {NAME_RULE}")
            continue
        if name.lower() in names:
            problems.section(section, f"the name {name!r} is already used by "
                             f"{names[name.lower()]}")
            continue
        names[name.lower()] = f"[{section}]"
        own = data[section]
        sec = _NamedCameraSection(section, data.get("camera"), own, problems)
        built = _cfg._build_camera(sec, ctx)
        if not built.snapshot_url and not built.webcam:
            built = dataclasses.replace(built, webcam=name)
        for option in own:
            if option == "webcams":
                problems.option(section, option, "unknown option; webcams belongs in "
                                "[camera] (it names several cameras at once)")
            elif option not in sec.known:
                guess = cfgfile.hint(option, sec.known, _cfg.OPTION_ALIASES.get("camera", {}))
                problems.option(section, option, f"unknown option; did you mean '{guess}'?"
                                if guess else "unknown option; options of a camera section: "
                                + ", ".join(o for o in sec.known))
        cameras.append(dataclasses.replace(built, name=name))
    if sections:
        for option in sorted(OWN_OPTIONS - {"webcams"}):
            if _given(camera, option):
                camera.error(option, "not used when [camera NAME] sections name the "
                             "cameras: move it into the section of the camera it belongs to")
    return tuple(cameras)


def _given(sec: cfgfile.Section, option: str) -> bool:
    """Set to something (an empty value means the default)."""
    return bool((sec.raw(option) or "").strip())


def cameras_of(config: _cfg.Config) -> tuple[_cfg.CameraConfig, ...]:
    """The cameras a printer watches: the named ones, else the single ``[camera]``."""
    return config.cameras or (config.camera,)


def camera_source(c: _cfg.CameraConfig, moonraker_url: str,
                  webcams: Any = None) -> CameraSource | None:
    """Where camera ``c``'s snapshots come from: its own snapshot_url, else its webcam in
    Moonraker's list ``webcams`` (None: the list is not known yet)."""
    base = web_base_from_moonraker(moonraker_url)
    if c.snapshot_url:
        return CameraSource(url=resolve_url(c.snapshot_url, base), name=c.name,
                            flip_horizontal=bool(c.flip_horizontal),
                            flip_vertical=bool(c.flip_vertical), rotation=c.rotation or 0)
    cam = pick_webcam(webcams, c.webcam) if webcams is not None else None
    if cam is None:
        return None
    return source_from_webcam(cam, base, c.flip_horizontal, c.flip_vertical, c.rotation)


def camera_label(c: _cfg.CameraConfig) -> tuple[str, str]:
    """How messages name the camera, and its section: ("camera", "[camera]") for the
    single one."""
    return (f"camera {c.name}", f"[camera {c.name}]") if c.name else ("camera", "[camera]")
