"""``failwatch.cfg``: every section's options, their defaults and bounds, and the loader.

One builder per section reads all of its options through the typed getters of
:mod:`failwatch_moonraker.cfgfile` (the file's syntax, :class:`Section`,
:class:`ConfigError`); the loader then reports every option it never asked for, and
every section it does not know, as unknown, all problems in one error.

The values of secret options (``api_key``, ``access_token``) never appear in an
error message.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit, urlunsplit

from failwatch_moonraker.camera.mask import Rect, parse_mask
from failwatch_moonraker.cfgfile import (
    INT_RE,
    ConfigError,
    Context,
    Problems,
    Section,
    hint,
    number,
    read_sections,
    show,
)

__all__ = [
    "ACTIONS",
    "DEFAULT_CONFIG_PATH",
    "OBICO_DEFAULT_URL",
    "ActionsConfig",
    "CameraConfig",
    "Config",
    "ConfigError",
    "DetectionConfig",
    "LOCAL_BACKENDS",
    "LoggingConfig",
    "MoonrakerConfig",
    "PREDICTOR_BACKENDS",
    "PredictorConfig",
    "Section",
    "RecordConfig",
    "StateConfig",
    "detection_from",
    "known_options",
    "load_config",
    "parse_config",
]

DEFAULT_CONFIG_PATH = "~/printer_data/config/failwatch.cfg"
OBICO_DEFAULT_URL = "https://elegoo-app.obico.io/ent/partners/api/elegoo/predict/"
ACTIONS = ("pause", "cancel", "heaters_off", "extruder_off", "bed_off", "notify", "gcode")

#: Predictor backends and the options each one requires (non-empty).
#: To add a backend, add it here and handle it where predictors are created.
_BACKEND_REQUIRED: Final[Mapping[str, tuple[str, ...]]] = {
    "obico": ("serial_no", "access_token"),
    "obico_ml_api": ("url",),
    "printwatch": ("api_key",),
    "pinozcam": (),
    "onnx": (),
}
#: Backends that run a model on this host (a local engine, no URL).
LOCAL_BACKENDS: Final[frozenset[str]] = frozenset({"pinozcam", "onnx"})
#: The predict URL each backend uses when [predictor] url is not set ("" = required).
_BACKEND_URLS: Final[Mapping[str, str]] = {
    "obico": OBICO_DEFAULT_URL,
    "obico_ml_api": "",
    "printwatch": "https://octoprint.printpal.io/api/v2/infer",
    "pinozcam": "",
    "onnx": "",
}
POLICIES = ("obico", "buffer")
ML_API_IMAGE_SOURCES = ("serve", "camera")
PREDICTOR_BACKENDS = tuple(_BACKEND_REQUIRED)

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")

_MIB = 1024 * 1024

#: Options whose values must never be shown, per section.
SECRET_OPTIONS: Final[Mapping[str, frozenset[str]]] = {
    "moonraker": frozenset({"api_key"}),
    "predictor": frozenset({"access_token", "api_key"}),
    "notify": frozenset({"webhook_urls", "apprise_urls"}),
}

#: Names other tools use for our sections/options, for "did you mean" hints.
_SECTION_ALIASES: Final[Mapping[str, str]] = {
    "webcam": "camera",
    "server": "moonraker",
    "ml_api": "predictor",
    "obico": "predictor",
}
OPTION_ALIASES: Final[Mapping[str, Mapping[str, str]]] = {
    "moonraker": {"host": "url", "moonraker_api_key": "api_key", "api_token": "api_key"},
    "camera": {
        "snapshot": "snapshot_url",
        "host_snapshot": "snapshot_url",
        "camera": "webcam",
        "flip_h": "flip_horizontal",
        "flip_x": "flip_horizontal",
        "flip_horizontally": "flip_horizontal",
        "flip_v": "flip_vertical",
        "flip_y": "flip_vertical",
        "flip_vertically": "flip_vertical",
        "rotate": "rotation",
    },
    "predictor": {"auth_token": "access_token", "token": "access_token", "serial": "serial_no"},
    "logging": {"log_level": "level", "max_file_size_mb": "max_size", "max_file_count": "backups"},
}

# Secrets shorter than this are not scrubbed from messages as a last resort (it would
# mangle ordinary words); they are still never echoed deliberately.
_MIN_SCRUB_LEN = 6






# ---------------------------------------------------------------------------
# Typed configuration
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class MoonrakerConfig:
    url: str
    api_key: str = dataclasses.field(repr=False)
    unix_socket: str


@dataclass(frozen=True)
class CameraConfig:
    snapshot_url: str
    webcam: str
    timeout: float
    max_size: int  # bytes
    flip_horizontal: bool | None  # None: the Moonraker webcam's setting, else no flip
    flip_vertical: bool | None
    rotation: int | None  # clockwise degrees: 0, 90, 180, 270; None as for flips
    max_pixels: int = 40_000_000  # larger pictures are refused before decoding
    mask: tuple[Rect, ...] = ()  # painted out, in the oriented view (camera/mask.py)
    name: str = ""  # "" for the single [camera]; else [camera NAME] or a webcams entry


@dataclass(frozen=True)
class PredictorConfig:
    backend: str
    url: str
    serial_no: str
    access_token: str = dataclasses.field(repr=False)
    timeout: float
    api_key: str = dataclasses.field(default="", repr=False)  # printwatch
    printer_id: str = ""  # printwatch; "" = failwatch-<host>[-<printer>]
    bending_factor: float = 1.0  # obico_ml_api
    image_source: str = "serve"  # obico_ml_api: serve | camera
    image_bind: str = "0.0.0.0"  # obico_ml_api, image_source serve
    image_port: int = 7135
    image_url: str = ""  # "" = http://<this host, as the ML server sees it>:<port>
    # Local engines (a model run on this host; see predictors/local/): shared options.
    # CPU affinity of the engine; () = every CPU ("all"); the default is "auto"
    cpus: tuple[int, ...] = dataclasses.field(default_factory=lambda: _auto_cpus())
    nice: int = 10  # the engine's nice value (Klipper runs at 0)
    unload_after: float = 300.0  # seconds after a print ends before the engine stops
    # pinozcam: passed to the runner (start arguments).
    score_threshold: float = 0.87
    area_sensitivity: float = 0.04
    # onnx: an Obico-style detector file run with onnxruntime (also uses bending_factor).
    model: str = dataclasses.field(default_factory=lambda: _default_model())  # .onnx file
    # onnxruntime intra-op threads; the default ("auto") follows the default cpus
    threads: int = dataclasses.field(default_factory=lambda: auto_threads(_auto_cpus()))
    confidence_threshold: float = 0.08  # boxes above this count (strictly)
    nms_threshold: float = 0.45  # a box overlapping a better one by more is dropped


@dataclass(frozen=True)
class DetectionConfig:
    interval: float
    sensitivity: float
    ewm_span: int
    short_window: int
    long_window: int
    threshold_low: float
    threshold_high: float
    short_multiple: float
    escalating_factor: float
    safe_frames: int
    resume_cooldown: float
    warning_cooldown: float
    policy: str = "obico"  # obico | buffer
    buffer_confidence: float = 0.6
    buffer_length: int = 16
    buffer_percent: float = 60.0
    buffer_warning_percent: float = 30.0


@dataclass(frozen=True)
class ActionsConfig:
    on_warning: tuple[str, ...]
    on_failure: tuple[str, ...]
    failure_gcode: str
    heaters_off_delay: float
    # Klipper's idle timeout while a print failwatch paused waits for the user (0 = leave it).
    paused_idle_timeout: float = 3600.0


@dataclass(frozen=True)
class RecordConfig:
    """[record]: per-print recordings of every frame, for ``replay`` and ``tune``."""

    enabled: bool = False
    path: str = os.path.expanduser("~/printer_data/failwatch/recordings")
    frames: bool = False  # also keep each frame's JPEG
    max_prints: int = 50
    max_size: int = 500 * 1024 * 1024  # bytes


@dataclass(frozen=True)
class StateConfig:
    path: str


@dataclass(frozen=True)
class LoggingConfig:
    path: str  # "" = no log file
    level: str
    max_size: int  # bytes
    backups: int


@dataclass(frozen=True)
class SnapshotsConfig:
    enabled: bool
    path: str
    max_count: int
    max_size: int  # bytes
    public_url: str  # "" = links relative to the Mainsail/Fluidd host


@dataclass(frozen=True)
class NotifyConfig:
    webhook_urls: tuple[str, ...] = dataclasses.field(repr=False)
    apprise_urls: tuple[str, ...] = dataclasses.field(repr=False)
    timeout: float
    include_image: bool
    printer_name: str


@dataclass(frozen=True)
class Config:
    path: str
    moonraker: MoonrakerConfig
    camera: CameraConfig
    predictor: PredictorConfig
    detection: DetectionConfig
    actions: ActionsConfig
    state: StateConfig
    logging: LoggingConfig
    snapshots: SnapshotsConfig
    notify: NotifyConfig
    record: RecordConfig = RecordConfig()  # defaulted: keep it last
    # Farm mode: the printer's name in a per-printer config, and in the top-level
    # config the [printer NAME] sections (empty: one printer, as without farm mode).
    name: str = ""
    printers: tuple[Config, ...] = ()
    # [camera NAME] sections or [camera] webcams (empty: the single [camera]).
    cameras: tuple[CameraConfig, ...] = ()

    def secrets(self) -> tuple[str, ...]:
        """The non-empty secret values, for log redaction.

        ``api_key``, ``access_token`` and the notification URLs (webhook and
        Apprise URLs usually carry a token).
        """
        values = (self.moonraker.api_key, self.predictor.access_token,
                  *self.notify.webhook_urls, *self.notify.apprise_urls)
        values += (self.predictor.api_key,)
        values += tuple(s for printer in self.printers for s in printer.secrets())
        return tuple(dict.fromkeys(s for s in values if s))


# ---------------------------------------------------------------------------
# The typed getter layer
# ---------------------------------------------------------------------------




# ---------------------------------------------------------------------------
# Per-section builders.  Every builder reads ALL of its options unconditionally
# (the set of getter calls is the list of known options; see known_options()).
# ---------------------------------------------------------------------------




def _http_url(sec: Section, option: str, value: str, *, relative_ok: bool = False) -> str:
    """Validate an http(s) URL (or, if allowed, a path on Moonraker's host)."""
    if not value or not sec.ok(option):
        return value
    parts = urlsplit(value)
    if parts.scheme in ("http", "https") and parts.netloc:
        return value
    if relative_ok and not parts.scheme and not parts.netloc and value.startswith("/"):
        return value
    if relative_ok:
        allowed = "an http:// or https:// URL, or a path on Moonraker's host starting with '/'"
    else:
        allowed = "an http:// or https:// URL"
    sec.error(option, f"must be {allowed}, got {show(value)}")
    return ""


def _moonraker_url(sec: Section, value: str) -> str:
    if not sec.ok("url"):
        return value
    parts = urlsplit(value)
    scheme = {"ws": "ws", "wss": "wss", "http": "ws", "https": "wss"}.get(parts.scheme.lower())
    if scheme is None or not parts.hostname:
        sec.error(
            "url",
            "must be a ws:// or wss:// URL (http:// and https:// are converted), "
            f"got {show(value)}",
        )
        return value
    path = parts.path if parts.path not in ("", "/") else "/websocket"
    return urlunsplit((scheme, parts.netloc, path, parts.query, parts.fragment))


def _check_secret(sec: Section, option: str, value: str) -> None:
    if value and any(ch.isspace() for ch in value) and sec.ok(option):
        sec.error(option, "must not contain spaces or line breaks (value not shown)")


def _build_moonraker(sec: Section, ctx: Context) -> MoonrakerConfig:
    url = _moonraker_url(sec, sec.get("url", "ws://127.0.0.1:7125/websocket").strip())
    api_key = sec.get("api_key", "")
    _check_secret(sec, "api_key", api_key)
    unix_socket = ctx.file_path(sec.get("unix_socket", "~/printer_data/comms/moonraker.sock"))
    return MoonrakerConfig(url=url, api_key=api_key, unix_socket=unix_socket)


_ROTATIONS: Final[Mapping[str, int]] = {"0": 0, "90": 90, "180": 180, "270": 270}
# [camera] max_pixels' bound: Pillow refuses more than about 179 MP whatever failwatch says.
MAX_MEGAPIXELS: Final = 150.0


def _build_camera(sec: Section, ctx: Context) -> CameraConfig:
    snapshot_url = _http_url(sec, "snapshot_url", sec.get("snapshot_url", ""), relative_ok=True)
    webcam = sec.get("webcam", "")
    timeout = sec.getfloat("timeout", 5.0, minval=0.5, maxval=120.0)
    max_size = sec.getfloat("max_size", 8.0, minval=0.1, maxval=100.0)
    flip_horizontal = sec.getboolean("flip_horizontal", None)
    flip_vertical = sec.getboolean("flip_vertical", None)
    rotation = sec.getchoice("rotation", _ROTATIONS, None)
    max_pixels = sec.getfloat("max_pixels", 40.0, minval=0.1, maxval=MAX_MEGAPIXELS)
    mask: tuple[Rect, ...] = ()
    mask_text = sec.get("mask", "", multiline=True)
    try:
        mask = parse_mask(mask_text)
    except ValueError as exc:
        sec.error("mask", str(exc))
    return CameraConfig(
        snapshot_url=snapshot_url,
        webcam=webcam,
        timeout=timeout,
        max_size=round(max_size * _MIB),
        flip_horizontal=flip_horizontal,
        flip_vertical=flip_vertical,
        rotation=rotation,
        max_pixels=round(max_pixels * 1_000_000),
        mask=mask,
    )


def _mask_source_problem(config: Config, farm: bool) -> str | None:
    """A mask needs failwatch to hand the predictor the frame: the ML server fetching
    the camera itself (``image_source: camera``) would see the unmasked picture."""
    predictor = config.predictor
    if predictor.backend != "obico_ml_api" or predictor.image_source != "camera":
        return None
    from failwatch_moonraker.cameras import cameras_of  # it builds on this module

    masked = next((c for c in cameras_of(config) if c.mask), None)
    if masked is None:
        return None
    if farm:
        option = "camera_mask"
    elif masked.name and not config.camera.mask:
        option = f"[camera {masked.name}] mask"
    else:
        option = "[camera] mask"
    return (f"'camera' cannot be used with {option}: the ML server would fetch the "
            "camera's own snapshots, which failwatch cannot mask; set image_source: serve "
            "(failwatch then serves each masked frame) or remove the mask")


def _check_mask_sources(config: Config, farm: Sequence[str], problems: Problems) -> None:
    if not farm:
        problem = _mask_source_problem(config, farm=False)
        if problem:
            problems.option("predictor", "image_source", problem)
        return
    sections = {name.split(None, 1)[-1].strip(): name for name in farm}
    for printer in config.printers:
        problem = _mask_source_problem(printer, farm=True)
        if problem:
            problems.option(sections.get(printer.name, f"printer {printer.name}"),
                            "predictor_image_source", problem)


def _build_predictor(sec: Section, ctx: Context) -> PredictorConfig:
    backend = sec.getchoice("backend", PREDICTOR_BACKENDS, "obico")
    url = sec.get("url", "").strip() or _BACKEND_URLS.get(backend, "")
    url = _http_url(sec, "url", url)
    serial_no = sec.get("serial_no", "").strip()
    access_token = sec.get("access_token", "")
    _check_secret(sec, "access_token", access_token)
    api_key = sec.get("api_key", "")
    _check_secret(sec, "api_key", api_key)
    printer_id = sec.get("printer_id", "").strip()
    if any(ch.isspace() for ch in printer_id) and sec.ok("printer_id"):
        sec.error("printer_id", f"must not contain spaces, got {show(printer_id)}")
    timeout = sec.getfloat("timeout", 30.0, minval=1.0, maxval=300.0)
    bending_factor = sec.getfloat("bending_factor", 1.0, above=0.0, maxval=10.0)
    image_source = sec.getchoice("image_source", ML_API_IMAGE_SOURCES, "serve")
    image_bind = sec.get("image_bind", "0.0.0.0").strip()
    if sec.ok("image_bind") and not _is_ip_address(image_bind):
        sec.error("image_bind", "must be an IP address of this machine to listen on "
                  f"(0.0.0.0 = every interface), got {show(image_bind)}")
    image_port = sec.getint("image_port", 7135, minval=0, maxval=65535)
    image_url = _http_url(sec, "image_url", sec.get("image_url", "").strip()).rstrip("/")
    cpus, nice, unload_after = _local_engine_options(sec)
    score_threshold = sec.getfloat("score_threshold", 0.87, above=0.0, maxval=1.0)
    area_sensitivity = sec.getfloat("area_sensitivity", 0.04, above=0.0, maxval=1.0)
    model, threads, confidence_threshold, nms_threshold = _onnx_options(sec, ctx, cpus)
    if sec.ok("backend"):
        values = {"serial_no": serial_no, "access_token": access_token, "url": url,
                  "api_key": api_key}
        for option in _BACKEND_REQUIRED.get(backend, ()):
            if not values.get(option) and sec.ok(option):
                sec.error(option, f"required for backend {backend!r}")
    return PredictorConfig(
        backend=backend, url=url, serial_no=serial_no, access_token=access_token, timeout=timeout,
        api_key=api_key, printer_id=printer_id, bending_factor=bending_factor,
        image_source=image_source, image_bind=image_bind, image_port=image_port,
        image_url=image_url, score_threshold=score_threshold,
        area_sensitivity=area_sensitivity, cpus=cpus, nice=nice, unload_after=unload_after,
        model=model, threads=threads, confidence_threshold=confidence_threshold,
        nms_threshold=nms_threshold,
    )


def _default_model() -> str:
    """Where ``failwatch-moonraker model fetch obico`` puts Obico's model."""
    from failwatch_moonraker.predictors.local.catalog import default_model_path

    return str(default_model_path())


def _onnx_options(sec: Section, ctx: Context, cpus: tuple[int, ...]
                  ) -> tuple[str, int, float, float]:
    """``model``, ``threads``, ``confidence_threshold``, ``nms_threshold`` of backend onnx."""
    model = ctx.file_path(sec.get("model", "").strip()) or _default_model()
    threads = auto_threads(cpus)
    raw_threads = sec.get("threads", "auto").strip()
    if raw_threads.lower() not in ("auto", ""):
        if INT_RE.fullmatch(raw_threads):
            threads = sec.getint("threads", threads, minval=1, maxval=64)
        else:
            sec.error("threads",
                      f"must be auto or an integer from 1 to 64, got {show(raw_threads)}")
    confidence = sec.getfloat("confidence_threshold", 0.08, minval=0.0, maxval=1.0)
    nms = sec.getfloat("nms_threshold", 0.45, above=0.0, maxval=1.0)
    return model, threads, confidence, nms


def auto_engine_cpus(available: Iterable[int]) -> tuple[int, ...]:
    """``cpus: auto``: every CPU the daemon may use but the lowest, when it has two or more.

    Why: nice alone does not keep Klipper on time; an engine scoring on every core
    made a nice-0 task wake about 3 ms late at p99, on all cores but one under 1 ms
    (bench (h)).
    The lowest is left because a Raspberry Pi handles its interrupts (USB, the MCU's
    serial line) on CPU 0. () = every CPU (a single-CPU host: nothing to leave).
    """
    cpus = sorted(set(available))
    return tuple(cpus[1:]) if len(cpus) > 1 else ()


def _usable_cpus() -> set[int]:
    """The CPUs this process may run on (every CPU where the system cannot say)."""
    if hasattr(os, "sched_getaffinity"):  # Linux; not macOS, where developers may run it
        return os.sched_getaffinity(0)
    return set(range(os.cpu_count() or 1))


def _auto_cpus() -> tuple[int, ...]:
    return auto_engine_cpus(_usable_cpus())


def auto_threads(cpus: tuple[int, ...]) -> int:
    """``threads: auto``: 2, or 1 for an engine on one CPU (more threads than CPUs only
    take turns)."""
    return min(2, len(cpus) or len(_usable_cpus()))


def _local_engine_options(sec: Section) -> tuple[tuple[int, ...], int, float]:
    """``cpus``, ``nice``, ``unload_after``: every local engine reads these (and ``timeout``)."""
    cpus_text = sec.getlist("cpus", ("auto",), kind="CPU")
    nice = sec.getint("nice", 10, minval=0, maxval=19)
    unload_after = sec.getfloat("unload_after", 300.0, minval=0.0, maxval=86400.0)
    words = [item.lower() for item in cpus_text]
    if words in (["auto"], []):  # an empty value: the default
        return _auto_cpus(), nice, unload_after
    if words == ["all"]:
        return (), nice, unload_after
    cpus: list[int] = []
    count = os.cpu_count() or 1
    for item in cpus_text:
        if item.lower() in ("auto", "all"):
            sec.error("cpus", f"{item.lower()} stands alone: auto, all, or CPU numbers "
                      "separated by commas")
            continue
        if not item.isdigit() or int(item) >= count:
            sec.error("cpus", f"must be auto, all, or CPU numbers from 0 to {count - 1} (this "
                      f"machine has {count} CPU(s)) separated by commas, got {show(item)}")
            continue
        cpus.append(int(item))
    return tuple(cpus), nice, unload_after


def _is_ip_address(value: str) -> bool:
    import ipaddress

    try:
        ipaddress.ip_address(value)
    except ValueError:
        return value == "localhost"
    return True


def _build_detection(sec: Section, ctx: Context) -> DetectionConfig:
    interval = sec.getfloat("interval", 10.0, minval=0.1, maxval=3600.0)
    sensitivity = sec.getfloat("sensitivity", 1.0, minval=0.1, maxval=5.0)
    ewm_span = sec.getint("ewm_span", 12, minval=1)
    short_window = sec.getint("short_window", 310, minval=1)
    long_window = sec.getint("long_window", 7200, minval=1)
    threshold_low = sec.getfloat("threshold_low", 0.38, minval=0.0)
    threshold_high = sec.getfloat("threshold_high", 0.78, minval=0.0)
    short_multiple = sec.getfloat("short_multiple", 3.8, minval=0.0)
    escalating_factor = sec.getfloat("escalating_factor", 1.75, minval=1.0)
    safe_frames = sec.getint("safe_frames", 30, minval=0)
    resume_cooldown = sec.getfloat("resume_cooldown", 90.0, minval=0.0)
    warning_cooldown = sec.getfloat("warning_cooldown", 300.0, minval=0.0)
    policy = sec.getchoice("policy", POLICIES, "obico")
    buffer_confidence = sec.getfloat("buffer_confidence", 0.6, above=0.0)
    buffer_length = sec.getint("buffer_length", 16, minval=1, maxval=1000)
    buffer_percent = sec.getfloat("buffer_percent", 60.0, above=0.0, maxval=100.0)
    # Default: half the failure share (30 % with the default 60 %).
    buffer_warning_percent = sec.getfloat("buffer_warning_percent", buffer_percent / 2,
                                          above=0.0, maxval=100.0)
    if (sec.ok("buffer_percent") and sec.ok("buffer_warning_percent")
            and buffer_warning_percent > buffer_percent):
        sec.error(
            "buffer_warning_percent",
            f"must be <= buffer_percent ({number(buffer_percent)}), "
            f"got {show(sec.raw('buffer_warning_percent') or number(buffer_warning_percent))}",
        )
    if sec.ok("threshold_low") and sec.ok("threshold_high") and threshold_high < threshold_low:
        sec.error(
            "threshold_high",
            f"must be >= threshold_low ({number(threshold_low)}), "
            f"got {show(sec.raw('threshold_high') or number(threshold_high))}",
        )
    return DetectionConfig(
        interval=interval,
        sensitivity=sensitivity,
        ewm_span=ewm_span,
        short_window=short_window,
        long_window=long_window,
        threshold_low=threshold_low,
        threshold_high=threshold_high,
        short_multiple=short_multiple,
        escalating_factor=escalating_factor,
        safe_frames=safe_frames,
        resume_cooldown=resume_cooldown,
        warning_cooldown=warning_cooldown,
        policy=policy,
        buffer_confidence=buffer_confidence,
        buffer_length=buffer_length,
        buffer_percent=buffer_percent,
        buffer_warning_percent=buffer_warning_percent,
    )


def _build_actions(sec: Section, ctx: Context) -> ActionsConfig:
    lists = {
        "on_warning": sec.getlist("on_warning", ("notify",), ACTIONS, kind="action"),
        "on_failure": sec.getlist("on_failure", ("pause", "notify"), ACTIONS, kind="action"),
    }
    failure_gcode = sec.get("failure_gcode", "", multiline=True).strip()
    heaters_off_delay = sec.getfloat("heaters_off_delay", 0.0, minval=0.0)
    paused_idle_timeout = sec.getfloat("paused_idle_timeout", 3600.0, minval=0.0,
                                       maxval=7 * 86400.0)
    for option, actions in lists.items():
        if "pause" in actions and "cancel" in actions:
            sec.error(option, "'pause' and 'cancel' cannot be used together")
    if sec.ok("failure_gcode") and not failure_gcode:
        users = [option for option, actions in lists.items() if "gcode" in actions]
        if users:
            sec.error(
                "failure_gcode",
                f"required because {' and '.join(users)} include{'s' if len(users) == 1 else ''}"
                " 'gcode'",
            )
    return ActionsConfig(
        on_warning=lists["on_warning"],
        on_failure=lists["on_failure"],
        failure_gcode=failure_gcode,
        heaters_off_delay=heaters_off_delay,
        paused_idle_timeout=paused_idle_timeout,
    )


def _build_state(sec: Section, ctx: Context) -> StateConfig:
    path = sec.get("path", "~/printer_data/failwatch/state.json").strip()
    if not path and sec.ok("path"):
        sec.error("path", "must not be empty")
    return StateConfig(path=ctx.file_path(path))


def _build_record(sec: Section, ctx: Context) -> RecordConfig:
    enabled = sec.getboolean("enabled", False)
    path = sec.get("path", "~/printer_data/failwatch/recordings").strip()
    if not path and sec.ok("path"):
        sec.error("path", "must not be empty")
    frames = sec.getboolean("frames", False)
    max_prints = sec.getint("max_prints", 50, minval=1, maxval=100_000)
    max_size = sec.getfloat("max_size", 500.0, minval=1.0, maxval=1_000_000.0)
    return RecordConfig(enabled=enabled, path=ctx.file_path(path), frames=frames,
                        max_prints=max_prints, max_size=round(max_size * _MIB))


def _build_logging(sec: Section, ctx: Context) -> LoggingConfig:
    path = sec.get("path", "~/printer_data/logs/failwatch.log").strip()
    level = sec.getchoice("level", LOG_LEVELS, "INFO")
    max_size = sec.getfloat("max_size", 5.0, minval=0.1, maxval=1000.0)
    backups = sec.getint("backups", 3, minval=0, maxval=100)
    return LoggingConfig(
        path=ctx.file_path(path), level=level, max_size=round(max_size * _MIB), backups=backups
    )


def _build_snapshots(sec: Section, ctx: Context) -> SnapshotsConfig:
    enabled = sec.getboolean("enabled", True)
    path = sec.get("path", "~/printer_data/logs/failwatch_snapshots").strip()
    if not path and sec.ok("path"):
        sec.error("path", "must not be empty")
    max_count = sec.getint("max_count", 100, minval=1, maxval=100_000)
    max_size = sec.getfloat("max_size", 200.0, minval=1.0, maxval=100_000.0)
    public_url = sec.get("public_url", "").strip().rstrip("/")
    if public_url:
        public_url = _http_url(sec, "public_url", public_url)
    return SnapshotsConfig(enabled=bool(enabled), path=ctx.file_path(path), max_count=max_count,
                           max_size=round(max_size * _MIB), public_url=public_url)


def _build_notify(sec: Section, ctx: Context) -> NotifyConfig:
    webhooks = tuple(sec.getlist("webhook_urls", ()))
    for url in webhooks:
        if not url.lower().startswith(("http://", "https://")) and sec.ok("webhook_urls"):
            sec.error("webhook_urls", "each URL must start with http:// or https:// "
                      "(value not shown: webhook URLs often hold a token)")
            break
    apprise_urls = tuple(sec.getlist("apprise_urls", ()))
    timeout = sec.getfloat("timeout", 10.0, minval=1.0, maxval=120.0)
    include_image = sec.getboolean("include_image", True)
    printer_name = sec.get("printer_name", "").strip() or _hostname()
    return NotifyConfig(webhook_urls=webhooks, apprise_urls=apprise_urls, timeout=timeout,
                        include_image=bool(include_image), printer_name=printer_name)


def _hostname() -> str:
    import socket

    return socket.gethostname() or "printer"


BUILDERS: Final[Mapping[str, Callable[[Section, Context], object]]] = {
    "moonraker": _build_moonraker,
    "camera": _build_camera,
    "predictor": _build_predictor,
    "detection": _build_detection,
    "actions": _build_actions,
    "state": _build_state,
    "logging": _build_logging,
    "snapshots": _build_snapshots,
    "notify": _build_notify,
    "record": _build_record,
}


# ---------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------








def _check_unknown(
    data: Mapping[str, Mapping[str, str]],
    sections: Mapping[str, Section],
    problems: Problems,
) -> None:
    known_sections = list(sections)
    for name, options in data.items():
        sec = sections.get(name)
        if sec is None:
            guess = hint(name, known_sections, _SECTION_ALIASES)
            if guess is not None:
                problems.section(name, f"unknown section; did you mean '[{guess}]'?")
            else:
                listed = ", ".join(f"[{s}]" for s in known_sections)
                problems.section(name, f"unknown section; known sections: {listed}")
            continue
        for option in options:
            if option in sec.known:
                continue
            guess = hint(option, sec.known, OPTION_ALIASES.get(name, {}))
            if guess is not None:
                message = f"unknown option; did you mean '{guess}'?"
            else:
                home = [s for s, other in sections.items() if option in other.known]
                if home:
                    message = f"unknown option; it belongs in [{home[0]}]"
                else:
                    message = f"unknown option; options of [{name}]: {', '.join(sec.known)}"
            problems.option(name, option, message)


def _scrub(messages: list[str], data: Mapping[str, Mapping[str, str]]) -> list[str]:
    """Last line of defence: blank out any secret value that found its way into a message."""
    secrets = [
        value.strip()
        for section, options in SECRET_OPTIONS.items()
        for option in options
        if len(value := data.get(section, {}).get(option, "").strip()) >= _MIN_SCRUB_LEN
    ]
    from failwatch_moonraker.printers import is_printer_section, secret_options

    printer_secrets = secret_options()
    secrets += [
        value.strip()
        for section, options in data.items() if is_printer_section(section)
        for option, value in options.items()
        if option in printer_secrets and len(value.strip()) >= _MIN_SCRUB_LEN
    ]
    for secret in secrets:
        messages = [m.replace(secret, "***") for m in messages]
    return messages


def _build(
    data: Mapping[str, Mapping[str, str]], path: str, problems: Problems
) -> tuple[Config, dict[str, Section]]:
    from failwatch_moonraker import printers  # farm mode; it builds on this module

    farm = printers.printer_sections(data)
    ctx = Context(path)
    sections = {
        name: Section(name, data.get(name), printers.top_sink(name, farm, problems),
                      SECRET_OPTIONS.get(name, ()))
        for name in BUILDERS
    }
    built = {name: builder(sections[name], ctx) for name, builder in BUILDERS.items()}
    from failwatch_moonraker import cameras

    config = Config(path=path, **built)  # type: ignore[arg-type]
    config = dataclasses.replace(config, cameras=cameras.build_cameras(
        data, sections["camera"], config.camera, path, problems, sections_allowed=not farm))
    _check_unknown({k: v for k, v in data.items()
                    if k not in farm and not cameras.is_camera_section(k)}, sections, problems)
    if farm:
        config = printers.build_printers(data, farm, config, path, problems)
    _check_mask_sources(config, farm, problems)
    return config, sections


def parse_config(text: str, path: str = "<string>") -> Config:
    """Build a :class:`Config` from the text of a config file.

    ``path`` is used in messages and to resolve relative file paths (unless it is a
    placeholder such as ``"<string>"``).  Raises :class:`ConfigError` listing every
    problem.
    """
    problems = Problems(path)
    data = read_sections(text, problems)
    if data is None:
        raise ConfigError(problems.messages)
    config, _sections = _build(data, path, problems)
    if problems.messages:
        raise ConfigError(_scrub(problems.messages, data))
    return config


def load_config(path: str | os.PathLike[str]) -> Config:
    """Read and validate the config file at ``path`` (``~`` is expanded)."""
    full = os.path.abspath(os.path.expanduser(os.fspath(path)))
    try:
        with open(full, encoding="utf-8-sig") as handle:
            text = handle.read()
    except FileNotFoundError:
        raise ConfigError(
            f"{full}: config file not found; create it (see config/failwatch.cfg.example; "
            "at least [predictor] serial_no and access_token are needed) "
            "or pass the right path with -c"
        ) from None
    except IsADirectoryError:
        raise ConfigError(f"{full}: is a directory, not a config file") from None
    except PermissionError:
        raise ConfigError(
            f"{full}: cannot read the config file (permission denied); "
            "make it readable by the user failwatch runs as"
        ) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{full}: not a UTF-8 text file (bad byte at offset {exc.start}); save it as UTF-8"
        ) from None
    except OSError as exc:
        raise ConfigError(f"{full}: cannot read the config file ({exc.strerror})") from None
    return parse_config(text, full)


def detection_from(values: Mapping[str, str], source: str = "<settings>") -> DetectionConfig:
    """[detection] from option texts, with the loader's rules (``replay``/``tune`` --set).

    Options not given take their defaults; raises :class:`ConfigError` listing
    every problem, unknown options included.
    """
    problems = Problems(source)
    sec = Section("detection", values, problems)
    detection = _build_detection(sec, Context(source))
    for option in values:
        if option not in sec.known:
            problems.option("detection", option,
                            f"unknown option; options of [detection]: {', '.join(sec.known)}")
    if problems.messages:
        raise ConfigError(problems.messages)
    return detection


def known_options() -> dict[str, tuple[str, ...]]:
    """Every section and option the loader reads, in reading order.

    Derived by building a config from an empty file and recording the getter calls.
    """
    problems = Problems("<known-options>")
    _config, sections = _build({}, "<known-options>", problems)
    return {name: tuple(sec.known) for name, sec in sections.items()}
