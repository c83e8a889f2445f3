"""``failwatch-moonraker replay``: run a recording through the daemon's own decision code.

Why: every threshold and window of the rule is a hyper-parameter; a user
should see what other settings would have done on their own prints. Replay
feeds the recorded scores to :class:`~failwatch_moonraker.core.session.WatchSession`
(the very code the daemon runs, statistics and policy included), starting from
the statistics recorded before the first frame, so with the recorded settings
it reproduces the daemon's levels exactly. Pure Python: no numpy here.

A recording of several cameras is replayed as the daemon watched it: each
frame to its own camera's statistics, the printer's level the worst camera's,
the actions once per print whichever camera saw it.
"""

from __future__ import annotations

import textwrap
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

from failwatch_moonraker.config import ConfigError, DetectionConfig, detection_from
from failwatch_moonraker.core.policy import Level, warning_threshold
from failwatch_moonraker.core.session import SessionParams, WatchSession, params_from_detection
from failwatch_moonraker.tools.recording import Recording

#: The [detection] options replay and tune understand (``interval`` is the camera's).
SETTINGS = (
    "sensitivity", "ewm_span", "short_window", "long_window", "threshold_low",
    "threshold_high", "short_multiple", "escalating_factor", "safe_frames",
    "warning_cooldown", "resume_cooldown",
)
RANGES = {
    "sensitivity": "0.1 to 5",
    "ewm_span": "integer >= 1",
    "short_window": "integer >= 1",
    "long_window": "integer >= 1",
    "threshold_low": ">= 0",
    "threshold_high": ">= threshold_low",
    "short_multiple": ">= 0",
    "escalating_factor": ">= 1",
    "safe_frames": "integer >= 0",
    "warning_cooldown": "seconds >= 0",
    "resume_cooldown": "seconds >= 0",
}


class SettingsError(Exception):
    """Bad ``--set`` / grid values; the message names the allowed keys and ranges."""


class CameraError(Exception):
    """``--camera`` names no camera of the recording."""


def allowed_keys() -> str:
    return ", ".join(f"{k} ({RANGES[k]})" for k in SETTINGS)


def _text(value: Any) -> str:
    if isinstance(value, float):
        return repr(value)  # round-trips exactly
    return str(value)


def parse_sets(items: Iterable[str]) -> dict[str, str]:
    """``key=value`` strings (``--set``) to a dict, keys checked."""
    values: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not value.strip():
            raise SettingsError(f"--set {item!r}: expected key=value; keys: {allowed_keys()}")
        if key not in SETTINGS:
            raise SettingsError(f"--set {item!r}: unknown setting {key!r}; allowed: "
                                f"{allowed_keys()}")
        values[key] = value.strip()
    return values


def make_settings(base: Mapping[str, Any], overrides: Mapping[str, Any],
                  source: str = "--set") -> DetectionConfig:
    """``base`` (e.g. the recorded settings) with ``overrides``, validated like failwatch.cfg."""
    values = {k: _text(v) for k, v in base.items() if k in SETTINGS}
    values.update({k: _text(v) for k, v in overrides.items()})
    try:
        return detection_from(values, source)
    except ConfigError as exc:
        problems = "\n".join(m.replace(f"{source}: [detection] ", f"{source} ")
                             for m in exc.problems)
        raise SettingsError(f"{problems}\nallowed settings: {allowed_keys()}") from None


def settings_dict(d: DetectionConfig) -> dict[str, float | int]:
    return {k: getattr(d, k) for k in SETTINGS}


def session_params(d: DetectionConfig) -> SessionParams:
    """The session parameters for [detection] settings, exactly as the daemon builds them."""
    return params_from_detection(d)


@dataclass(slots=True)
class ReplayFrame:
    n: int  # frame number within the print (the daemon's prediction_num)
    t: float  # seconds since the print started
    p: float
    ewm: float
    short: float
    long: float
    level: Level
    fire: Level | None
    warn_at: float  # the EWM level that warns at this frame (on the score's scale)
    fail_at: float  # ... and that fails
    warm_up: bool  # still within safe_frames: no decision
    resumed: bool = False  # the user resumed just before this frame
    camera: str = ""  # the camera whose frame it is; n, ewm, ... are that camera's
    seen: Level = Level.OK  # that camera's own verdict (``level`` is the printer's)


@dataclass
class ReplayResult:
    recording: Recording
    settings: DetectionConfig
    frames: list[ReplayFrame] = field(default_factory=list)
    followed_changes: int = 0  # recorded mid-print settings changes applied
    mismatches: int | None = None  # frames whose level differs from the recorded one
    cameras: list[str] = field(default_factory=lambda: [""])  # the cameras replayed
    only: str | None = None  # --camera: the one camera replayed, alone

    def first(self, level: Level) -> ReplayFrame | None:
        """The first frame the printer's level was ``level``."""
        return next((f for f in self.frames if f.level is level), None)

    def first_fire(self, level: Level) -> ReplayFrame | None:
        return next((f for f in self.frames if f.fire is level), None)

    def of(self, camera: str) -> list[ReplayFrame]:
        return [f for f in self.frames if f.camera == camera]

    def first_seen(self, camera: str, level: Level) -> ReplayFrame | None:
        """The first frame of ``camera`` whose own verdict was ``level``."""
        return next((f for f in self.frames if f.camera == camera and f.seen is level), None)

    @property
    def several(self) -> bool:
        return len(self.cameras) > 1


def thresholds(session: WatchSession, camera: str | None = None) -> tuple[float, float]:
    """The EWM levels at which the rule warns and fails now (policy.warning_threshold),
    for ``camera`` (the leading camera by default)."""
    stats = session.stats if camera is None else session.track(camera).stats
    policy = session.params.policy
    tw = warning_threshold(stats, policy)
    base = stats.rolling_mean_long
    return base + tw / policy.sensitivity, base + tw * policy.escalating_factor / policy.sensitivity


def start_session(rec: Recording, params: SessionParams,
                  cameras: Sequence[str] | None = None) -> WatchSession:
    """A session where the daemon was before the recording's first frame.

    The daemon's own restart path: the statistics as saved (each camera's),
    the same print id, so ``begin_print`` carries them on instead of resetting
    them. ``cameras``: the recording's by default.
    """
    names = list(cameras) if cameras is not None else rec.camera_names()
    data: dict[str, Any] = {"print_id": rec.print_id}
    if names == [""]:
        data["stats"] = rec.start_stats("")
    else:
        data["cameras"] = {name: {"stats": rec.start_stats(name)} for name in names}
    session = WatchSession.from_dict(params, data, cameras=names)
    session.on_print_state("printing", rec.frames[0].t if rec.frames else 0.0)
    session.begin_print(rec.print_id)
    return session


def camera_choice(rec: Recording, camera: str) -> str:
    """``--camera NAME`` checked against the recording's cameras."""
    names = rec.camera_names()
    if camera in names:
        return camera
    if names == [""]:
        raise CameraError(f"--camera {camera}: {rec.path} has one unnamed camera ([camera]); "
                          "leave --camera out")
    raise CameraError(f"--camera {camera}: no such camera in {rec.path}; its cameras: "
                      f"{', '.join(n or '(unnamed)' for n in names)}")


def replay(rec: Recording, settings: DetectionConfig, *, follow: bool = False,
           camera: str | None = None) -> ReplayResult:
    """The daemon's decisions on the recorded scores with ``settings``.

    ``follow``: apply the settings changes recorded mid-print (only meaningful
    when ``settings`` are the recorded ones). ``camera``: replay that camera's
    frames alone, as if it were the printer's only camera.
    """
    names = [camera_choice(rec, camera)] if camera is not None else rec.camera_names()
    session = start_session(rec, session_params(settings), names)
    result = ReplayResult(rec, settings, cameras=names, only=camera)
    replayed = []
    for frame in rec.frames:
        if follow and frame.params is not None:
            changed = make_settings(settings_dict(settings), frame.params, "recording")
            if changed != settings:
                result.followed_changes += 1
            settings = changed
            session.params = session_params(settings)
        if frame.resumed_at is not None:  # a resume is the printer's, whichever camera
            session.on_print_state("paused", frame.resumed_at)
            session.on_print_state("printing", frame.resumed_at)
        if camera is not None and frame.camera != camera:
            continue  # --camera: another camera's frame
        outcome = session.on_frame(frame.p, frame.t, frame.camera)
        assert outcome is not None  # the session is printing a known print
        warn_at, fail_at = thresholds(session, frame.camera)
        s = session.track(frame.camera).stats
        replayed.append(frame)
        result.frames.append(ReplayFrame(
            n=s.prediction_num, t=frame.t - rec.start_time, p=frame.p, ewm=s.ewm_mean,
            short=s.rolling_mean_short, long=s.rolling_mean_long, level=outcome.level,
            fire=outcome.fire, warn_at=warn_at, fail_at=fail_at,
            warm_up=s.prediction_num < session.params.policy.safe_frames,
            resumed=frame.resumed_at is not None, camera=frame.camera, seen=outcome.seen))
    # Alone, a camera's level is its own verdict: compare it with the one recorded.
    alone = camera is not None and rec.camera_names() != [camera]
    recorded = [f.seen if alone else f.level for f in replayed]
    if replayed and all(level is not None for level in recorded):
        pairs = zip(result.frames, recorded, strict=True)
        result.mismatches = sum(str(f.level) != r for f, r in pairs)
    return result


# ---------------------------------------------------------------------------
# Output
# ---------------------------------------------------------------------------


def clock(seconds: float) -> str:
    """``1:02:03`` for seconds since the print started."""
    sign = "-" if seconds < 0 else ""
    s = int(round(abs(seconds)))
    return f"{sign}{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def describe_settings(d: DetectionConfig, keys: Sequence[str] = SETTINGS) -> str:
    return " ".join(f"{k}={_text(getattr(d, k))}" for k in keys)


def _when(result: ReplayResult, frame: ReplayFrame) -> str:
    of = f" of camera {frame.camera}" if result.several else ""
    text = f"frame {frame.n}{of} at {frame.t:.1f} s ({clock(frame.t)})"
    if result.recording.start_time > 1e8:
        wall = time.strftime("%H:%M:%S", time.localtime(result.recording.start_time + frame.t))
        text += f", {wall}"
    return text


def _notes(f: ReplayFrame, *, resumes: bool = True) -> list[str]:
    notes = []
    if f.resumed and resumes:
        notes.append("user resumed before this frame")
    if f.fire is Level.FAILURE:
        notes.append("on_failure actions (pause)")
    elif f.fire is Level.WARNING:
        notes.append("on_warning actions")
    return notes


def _table(frames: Sequence[ReplayFrame], out: TextIO, *, own: bool = False,
           cameras: Sequence[str] = ()) -> None:
    """The frames where the level changes or something happens; ``own``: the camera's
    own verdict instead of the printer's level; ``cameras``: add a camera column."""
    width = max((len(c) for c in cameras), default=0)
    width = max(width, len("camera")) if width else 0

    def camera(name: str) -> str:
        return f"  {name:<{width}}" if width else ""

    print(f"{camera('camera')}  {'frame':>6} {'time (s)':>9} {'h:mm:ss':>8}  {'level':<8} "
          f"{'p':>6} {'ewm':>6} {'short':>6} {'long':>6} {'warn at':>7} {'fail at':>7}  action",
          file=out)
    previous = Level.OK
    for f in frames:
        level = f.seen if own else f.level
        notes = _notes(f, resumes=not own)  # a resume is the printer's: in its table
        if level is previous and not notes:
            continue
        previous = level
        print(f"{camera(f.camera)}  {f.n:>6} {f.t:>9.1f} {clock(f.t):>8}  {str(level):<8} "
              f"{f.p:>6.3f} "
              f"{f.ewm:>6.3f} {f.short:>6.3f} {f.long:>6.3f} {f.warn_at:>7.3f} {f.fail_at:>7.3f}"
              f"  {'; '.join(notes)}", file=out)


def _baseline(rec: Recording, camera: str) -> str:
    stats = rec.start_stats(camera)
    return (f"long mean {float(stats.get('rolling_mean_long', 0.0)):.4f} over "
            f"{int(stats.get('prediction_num_lifetime', 0))} lifetime frames")


def print_report(result: ReplayResult, out: TextIO, origin: str) -> None:
    rec = result.recording
    frames = result.frames
    print(f"Replay of {rec.path}: {rec.title()}", file=out)
    if result.several:
        print(f"  {len(result.cameras)} cameras: {', '.join(result.cameras)}; the printer's "
              "level is the worst camera's, its actions run once per print", file=out)
    span = frames[-1].t - frames[0].t if frames else 0.0
    baseline = "" if result.several else \
        f"; baseline before the first frame: {_baseline(rec, result.cameras[0])}"
    print(f"  {len(frames)} frames over {clock(span)}{baseline}", file=out)
    if result.only is not None and rec.camera_names() != [result.only]:
        print(f"  camera {result.only} alone (the recording's cameras: "
              f"{', '.join(n or '(unnamed)' for n in rec.camera_names())}): the level is its "
              "own verdict", file=out)
    wrapped = textwrap.fill(describe_settings(result.settings), 96, initial_indent="    ",
                            subsequent_indent="    ")
    print(f"  settings ({origin}):\n{wrapped}", file=out)
    policy = rec.params.get("policy", "obico")
    if policy != "obico":
        print(f"  note: this print was watched with the {policy!r} policy; replay models the "
              "obico rule, so its levels differ from the recorded ones", file=out)
    if result.followed_changes:
        print(f"  followed {result.followed_changes} settings change(s) recorded mid-print",
              file=out)
    if rec.restarts:
        print(f"  failwatch restarted {rec.restarts} time(s) during this print; the statistics "
              "carry on across restarts", file=out)
    if rec.bad_lines:
        print(f"  {rec.bad_lines} unreadable line(s) skipped", file=out)
    if result.several:
        for camera in result.cameras:
            _camera_report(result, camera, out)
        print("\nPrinter (the worst camera's level) and actions:", file=out)
    else:
        print("\nLevel changes and actions:", file=out)
    _table(frames, out, cameras=result.cameras if result.several else ())
    print("", file=out)
    warning, failure = result.first(Level.WARNING), result.first(Level.FAILURE)
    pause = result.first_fire(Level.FAILURE)
    print(f"first warning: {_when(result, warning) if warning else 'none'}", file=out)
    print(f"first failure: {_when(result, failure) if failure else 'none'}", file=out)
    if pause is not None and (pause is not failure or result.several):
        held = " (earlier failure frames fell within resume_cooldown)" \
            if pause is not failure else ""
        print(f"first pause:   {_when(result, pause)}{held}", file=out)
    elif failure is not None and pause is None:
        print("first pause:   none (failure frames fell within resume_cooldown)", file=out)
    elif result.several:
        print("first pause:   none", file=out)
    if result.mismatches is not None:
        what = "this camera's recorded verdicts" if result.only is not None and \
            rec.camera_names() != [result.only] else "what failwatch decided"
        if result.mismatches == 0:
            print(f"levels: identical to {what} on all {len(frames)} recorded "
                  "frames", file=out)
        else:
            print(f"levels: differ from {what} on {result.mismatches} of "
                  f"{len(frames)} frames", file=out)


def _camera_report(result: ReplayResult, camera: str, out: TextIO) -> None:
    """One camera's own frames, statistics and verdicts."""
    frames = result.of(camera)
    name = camera or "(unnamed)"
    after = f", {frames[-1].long:.4f} after its last frame" if frames else ""
    print(f"\nCamera {name}: {len(frames)} frames; {_baseline(result.recording, camera)} "
          f"before its first frame{after}", file=out)
    if not frames:
        return
    if all(f.seen is Level.OK for f in frames) and not any(f.fire for f in frames):
        print(f"  ok on every frame (last: ewm {frames[-1].ewm:.3f}, short mean "
              f"{frames[-1].short:.3f})", file=out)
    else:
        _table(frames, out, own=True)
    for level in (Level.WARNING, Level.FAILURE):
        first = result.first_seen(camera, level)
        when = "none" if first is None else _when(result, first)
        print(f"  first {level}: {when}", file=out)
