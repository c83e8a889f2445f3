"""``backend: pinozcam``: PiNozCam's failure detector, run on this host.

The model and its static runner come from the ``pinozcam-runtime`` package on
PyPI (PiNozCam's, AGPL-3.0, not part of failwatch). The runner speaks runner
protocol v1 on stdin/stdout (framing in :mod:`.engine`); this module finds it,
checks its files against the package's manifest, hands the supervisor its
start arguments and handshake, letterboxes frames (in a thread) and maps its
answer to a :class:`Prediction`: p is the runner's ``severity`` (0..1), the
detections are the boxes scoring above ``score_threshold``.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import logging
import math
import os
import pkgutil
import platform
import stat
import struct
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from failwatch_moonraker.predictors.base import (
    BadResponse,
    Detection,
    PredictContext,
    Prediction,
)
from failwatch_moonraker.predictors.local.engine import (
    EngineMissing,
    EngineProcess,
    EngineSpec,
    LocalEngine,
    off_loop,
)
from failwatch_moonraker.predictors.local.letterbox import Placement, _black, letterbox, to_frame

if TYPE_CHECKING:
    from failwatch_moonraker.config import PredictorConfig

log = logging.getLogger("failwatch")

PACKAGE = "pinozcam-runtime"
MODULE = "pinozcam_runner"
PROTOCOL = 1
PROC_W, PROC_H = 640, 384
IN_BYTES = PROC_W * PROC_H * 3
N_OUTPUTS = 10
CMD_PING, CMD_INFER, CMD_INFO, CMD_SHUTDOWN = 1, 2, 3, 4
EXIT_CODES = {2: "bad start arguments", 3: "the model cannot be loaded"}
START_TIMEOUT = 120.0  # the first load on a Pi Zero can take a while
_RECT = struct.Struct("<I4i")
#: platform.machine() spellings -> the runner's TARGET names.
_MACHINES = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "aarch64", "arm64": "aarch64",
             "armv7l": "armv7l", "armv8l": "armv7l", "armv6l": "armv7l"}


def install_hint() -> str:
    pip = os.path.join(os.path.dirname(sys.executable), "pip")
    return (f"install it with ./install.sh --local pinozcam (from failwatch's source folder), "
            f"or {pip} install 'failwatch-moonraker[pinozcam]'")


@dataclass(frozen=True)
class Runtime:
    """One installed runtime: where its runner and model are."""

    module: str
    version: str
    target: str
    root: str
    runner: str
    model: str
    model_name: str


_hash_cache: dict[tuple[str, int, int], str] = {}


def _sha256(path: str) -> str:
    st = os.stat(path)
    key = (path, st.st_size, st.st_mtime_ns)
    if key not in _hash_cache:
        digest = hashlib.sha256()
        buf = bytearray(1 << 18)  # one buffer, reused: no garbage per chunk
        view = memoryview(buf)
        with open(path, "rb") as handle:
            while n := handle.readinto(buf):
                digest.update(view[:n])
        _hash_cache[key] = digest.hexdigest()
    return _hash_cache[key]


def _candidate_modules() -> list[str]:
    """``pinozcam_runner`` first, then board variants installed the same way."""
    names = [MODULE]
    names += sorted(m.name for m in pkgutil.iter_modules()
                    if m.name.startswith(MODULE + "_") and m.ispkg)
    return names


def find_runtime() -> Runtime:
    """The runtime for this machine, its files checked; :class:`EngineMissing` if none."""
    problems: list[str] = []
    for name in _candidate_modules():
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        try:
            return _check_runtime(name, module)
        except EngineMissing as exc:
            problems.append(str(exc))
    if problems:
        raise EngineMissing("; ".join(problems))
    raise EngineMissing(f"the pinozcam backend needs the {PACKAGE} package (PiNozCam's model "
                        f"and runner, AGPL-3.0, from PyPI), which is not installed for "
                        f"{sys.executable}: {install_hint()}")


def _check_runtime(name: str, module: Any) -> Runtime:
    root = str(getattr(module, "ROOT", "") or os.path.dirname(module.__file__ or ""))
    version = str(getattr(module, "VERSION", "?"))
    target = str(getattr(module, "TARGET", ""))
    where = f"{name} {version} ({root})"
    machine = _MACHINES.get(platform.machine().lower(), platform.machine())
    if target and target != machine:
        raise EngineMissing(f"{where} is built for {target}, this machine is {machine}: "
                            f"reinstall it ({install_hint()})")
    try:
        with open(os.path.join(root, "manifest.json"), encoding="utf-8") as handle:
            manifest = json.load(handle)
    except (OSError, ValueError) as exc:
        raise EngineMissing(f"{where}: cannot read its manifest.json ({exc}); reinstall it "
                            f"({install_hint()})") from None
    if manifest.get("runner_protocol") != PROTOCOL:
        raise EngineMissing(f"{where} speaks runner protocol {manifest.get('runner_protocol')}"
                            f", failwatch speaks {PROTOCOL}: install {PACKAGE} 1.x")
    files = manifest.get("files") if isinstance(manifest.get("files"), dict) else {}
    bin_dir = str(getattr(module, "BIN_DIR", os.path.join(root, "bin")))
    model_dir = str(getattr(module, "MODEL_DIR", os.path.join(root, "models")))
    runner = os.path.join(bin_dir, f"nozcam_daemon.{target or machine}.static")
    models = manifest.get("models") if isinstance(manifest.get("models"), dict) else {}
    model_name = next((m for m in models if os.path.exists(os.path.join(model_dir, m))), "")
    if not model_name:
        raise EngineMissing(f"{where} has no model file in {model_dir}; reinstall it "
                            f"({install_hint()})")
    model = os.path.join(model_dir, model_name)
    for path in (runner, model):
        rel = os.path.relpath(path, root)
        entry = files.get(rel)
        if not isinstance(entry, dict):
            raise EngineMissing(f"{where}: {rel} is not in its manifest.json")
        try:
            size = os.path.getsize(path)
        except OSError:
            raise EngineMissing(f"{where}: {rel} is missing; reinstall it "
                                f"({install_hint()})") from None
        if size != entry.get("bytes") or _sha256(path) != entry.get("sha256"):
            raise EngineMissing(f"{where}: {rel} does not match its manifest.json (damaged "
                                f"or partial download); reinstall it ({install_hint()})")
    mode = os.stat(runner).st_mode
    if not mode & stat.S_IXUSR:  # pip may drop the run bit
        try:
            os.chmod(runner, mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
        except OSError as exc:
            raise EngineMissing(f"{where}: {runner} is not executable and failwatch cannot "
                                f"change that ({exc.strerror}): chmod +x it") from None
    return Runtime(name, version, target or machine, root, runner, model, model_name)


def parse_answer(body: bytes, req_id: int, where: Placement, score_threshold: float
                 ) -> Prediction:
    """The runner's INFER reply to a Prediction; anything off is :class:`BadResponse`."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise BadResponse(f"pinozcam runner sent a reply that is not JSON: "
                          f"{body[:80]!r}") from None
    if not isinstance(data, dict):
        raise BadResponse("pinozcam runner sent JSON that is not an object")
    if data.get("req_id") != req_id:
        raise BadResponse(f"pinozcam runner answered request {data.get('req_id')!r}, "
                          f"not {req_id}")
    severity = data.get("severity")
    if isinstance(severity, bool) or not isinstance(severity, (int, float)) or \
            not math.isfinite(severity) or not 0.0 <= severity <= 1.0:
        raise BadResponse(f"pinozcam runner sent severity {severity!r}, not a number 0..1")
    scores, boxes = data.get("scores", []), data.get("boxes", [])
    if not isinstance(scores, list) or not isinstance(boxes, list) or \
            len(scores) != len(boxes):
        raise BadResponse("pinozcam runner sent scores and boxes that do not pair up")
    detections: list[Detection] = []
    for score, box in zip(scores, boxes, strict=True):
        if not isinstance(score, (int, float)) or not math.isfinite(score) or \
                not isinstance(box, list) or len(box) != 4 or \
                not all(isinstance(v, (int, float)) and math.isfinite(v) for v in box):
            raise BadResponse(f"pinozcam runner sent a malformed box {box!r}")
        if score > score_threshold:
            x1, y1, x2, y2 = (float(v) for v in box)
            detections.append((float(score), to_frame((x1, y1, x2, y2), where)))
    raw = {k: data[k] for k in ("severity", "percentage_area", "total_area", "scores")
           if k in data}
    return Prediction(p=float(severity), detections=tuple(detections), raw=raw)


class PinozcamPredictor:
    """A :class:`~failwatch_moonraker.predictors.base.Predictor` over the local runner."""

    name = "pinozcam"

    def __init__(self, config: PredictorConfig) -> None:
        self.score_threshold = config.score_threshold
        self.area_sensitivity = config.area_sensitivity
        self.cpus = config.cpus
        self.nice = config.nice
        self.runtime: Runtime | None = None
        self._req_id = 0
        self.engine = LocalEngine("pinozcam", self._spec, timeout=config.timeout,
                                  start_timeout=max(START_TIMEOUT, config.timeout),
                                  unload_after=config.unload_after, handshake=self._handshake,
                                  facts={"package": PACKAGE})

    def _spec(self) -> EngineSpec:
        """Runs in a thread at each start: finds and checks the files (hashes are cached)."""
        rt = self.runtime = find_runtime()
        argv = (rt.runner, rt.model, str(PROC_W), str(PROC_H), f"{self.score_threshold:g}",
                f"{self.area_sensitivity:g}", ",".join(map(str, self.cpus)), str(self.nice))
        # The runner also sets the (absolute) nice value and the CPU list itself.
        return EngineSpec(argv=argv, cpus=self.cpus, nice=self.nice, exit_codes=EXIT_CODES,
                          facts={"package": PACKAGE, "version": rt.version,
                                 "module": rt.module, "runner": rt.runner,
                                 "model": rt.model, "licence": "AGPL-3.0 (PiNozCam)"})

    async def _handshake(self, child: EngineProcess) -> dict[str, Any]:
        pong = await child.request(CMD_PING, b"", START_TIMEOUT)
        if pong != b"pong":
            raise BadResponse(f"pinozcam runner answered PING with {pong[:40]!r}")
        try:
            info = json.loads(await child.request(CMD_INFO, b"", 10.0))
        except ValueError:
            raise BadResponse("pinozcam runner's INFO is not JSON") from None
        want = {"proc_w": PROC_W, "proc_h": PROC_H, "in_bytes": IN_BYTES,
                "n_outputs": N_OUTPUTS}
        wrong = {k: info.get(k) for k, v in want.items()
                 if not isinstance(info, dict) or info.get(k) != v}
        if wrong:
            raise BadResponse(f"pinozcam runner reports {wrong}, failwatch needs {want}: "
                              f"not a runner/model pair for protocol {PROTOCOL}")
        warm = self._next_id()
        body = await child.request(CMD_INFER, (_RECT.pack(warm, 0, 0, PROC_W, PROC_H),
                                               _black(IN_BYTES)), START_TIMEOUT)
        parse_answer(body, warm, Placement(PROC_W, PROC_H, False, 0, 0, PROC_W, PROC_H), 1.0)
        return {"runner_cpus": info.get("cpus"),
                "score_threshold": info.get("score_thr"),
                "area_sensitivity": info.get("sensitivity")}

    def _next_id(self) -> int:
        self._req_id = (self._req_id + 1) & 0xFFFFFFFF
        return self._req_id

    async def predict(self, jpeg: bytes, print_id: str,
                      context: PredictContext | None = None) -> Prediction:
        canvas, where = await off_loop(letterbox, jpeg, PROC_W, PROC_H)
        req_id = self._next_id()
        head = _RECT.pack(req_id, where.x, where.y, where.w, where.h)
        body = await self.engine.request(CMD_INFER, (head, *canvas))
        try:
            return parse_answer(body, req_id, where, self.score_threshold)
        except BadResponse as exc:
            await self.engine.restart(str(exc))  # out of step, or not a runner we know
            raise

    async def configure(self, score_threshold: float, area_sensitivity: float) -> None:
        """New start arguments: the runner is restarted with them."""
        if (score_threshold, area_sensitivity) != (self.score_threshold,
                                                   self.area_sensitivity):
            self.score_threshold, self.area_sensitivity = score_threshold, area_sensitivity
            await self.engine.restart("score_threshold/area_sensitivity changed")

    # -- optional hooks the daemon calls ----------------------------------------------

    async def warm_up(self) -> None:
        """Start the engine now (``detect``: its start-up is not a picture's time)."""
        await self.engine.request(CMD_PING, timed=False)

    async def print_started(self) -> None:
        await self.engine.print_started()

    async def print_ended(self) -> None:
        await self.engine.print_ended()

    def engine_facts(self) -> dict[str, Any]:
        return self.engine.facts()

    def engine_summary(self) -> str:
        return self.engine.summary()

    async def close(self) -> None:
        await self.engine.close()
