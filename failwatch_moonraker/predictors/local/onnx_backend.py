"""``[predictor] backend: onnx``: an Obico-style ONNX detector (Obico's own model) on this host.

The daemon side only: it sends each JPEG to the ONNX worker process
(:mod:`.onnx_worker`, supervised by :class:`~.engine.LocalEngine`) and turns the
worker's JSON into a :class:`Prediction`. onnxruntime, numpy and the picture
decoding live in the worker; nothing here imports them.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import importlib.util
import json
import logging
import os
import struct
import sys
from typing import Any

from failwatch_moonraker.predictors.base import (
    BadRequest,
    BadResponse,
    PredictContext,
    Prediction,
    Unavailable,
)
from failwatch_moonraker.predictors.local.catalog import OBICO
from failwatch_moonraker.predictors.local.engine import (
    EngineMissing,
    EngineProcess,
    EngineSpec,
    EngineStatusError,
    LocalEngine,
)

log = logging.getLogger("failwatch")

__all__ = ["OnnxPredictor", "WORKER_MODULE"]

WORKER_MODULE = "failwatch_moonraker.predictors.local.onnx_worker"
PING, INFER, INFO = 1, 2, 3
BAD_PAYLOAD = 2
EXIT_MODEL = 3
REQ_ID = struct.Struct("<I")
EXIT_CODES = {2: "bad arguments", 3: "the model cannot be loaded", 4: "onnxruntime is missing"}
INSTALL = ("pip install 'failwatch-moonraker[onnx]' into failwatch's virtualenv, or "
           "./install.sh --local obico")


class OnnxPredictor:
    """Scores frames with an ONNX file of Obico's tensors, the way Obico's ML server does."""

    name = "onnx"

    def __init__(self, model: str, *, threads: int = 2, confidence_threshold: float = 0.08,
                 nms_threshold: float = 0.45, bending_factor: float = 1.0,
                 cpus: tuple[int, ...] = (), nice: int = 10, timeout: float = 30.0,
                 unload_after: float = 300.0, start_timeout: float = 180.0,
                 python: str = sys.executable) -> None:
        self.model = os.path.expanduser(model)
        self.threads = threads
        self.confidence_threshold = confidence_threshold
        self.nms_threshold = nms_threshold
        self.bending_factor = bending_factor
        self.cpus = cpus
        self.nice = nice
        self.python = python
        self.engine = LocalEngine("onnx engine", self._spec, timeout=timeout,
                                  start_timeout=start_timeout, unload_after=unload_after,
                                  handshake=self._handshake)
        self._req_id = 0
        self._refused: tuple[str, tuple[int, int]] | None = None
        self._told_sha: set[str] = set()

    @classmethod
    def from_config(cls, config: Any) -> OnnxPredictor:
        return cls(config.model, threads=config.threads,
                   confidence_threshold=config.confidence_threshold,
                   nms_threshold=config.nms_threshold, bending_factor=config.bending_factor,
                   cpus=config.cpus, nice=config.nice, timeout=config.timeout,
                   unload_after=config.unload_after)

    # -- starting the worker -------------------------------------------------------

    def _file_signature(self) -> tuple[int, int] | None:
        try:
            st = os.stat(self.model)
        except OSError:
            return None
        return st.st_size, st.st_mtime_ns

    def _spec(self) -> EngineSpec:
        """Runs in a thread before each start: is everything there?"""
        if not os.path.isfile(self.model):
            raise EngineMissing(f"onnx: the model file {self.model} does not exist; fetch "
                                "Obico's with 'failwatch-moonraker model fetch obico' (or "
                                "./install.sh --local obico), or set [predictor] model")
        if importlib.util.find_spec("onnxruntime") is None:
            raise EngineMissing(f"onnx: onnxruntime is not installed: {INSTALL}")
        try:
            version = importlib.metadata.version("onnxruntime")
        except importlib.metadata.PackageNotFoundError:
            version = "?"
        argv = (self.python, "-m", WORKER_MODULE, self.model,
                "--threads", str(self.threads),
                "--confidence-threshold", repr(self.confidence_threshold),
                "--nms-threshold", repr(self.nms_threshold),
                "--bending-factor", repr(self.bending_factor))
        return EngineSpec(argv=argv, cpus=self.cpus, nice=self.nice,
                          facts={"package": "onnxruntime", "version": version,
                                 "runner": f"onnx_worker ({os.path.basename(self.python)})",
                                 "model": self.model},
                          exit_codes=EXIT_CODES)

    async def _handshake(self, child: EngineProcess) -> dict[str, Any]:
        try:
            pong = await child.request(PING, b"", self.engine.start_timeout)
        except Unavailable:
            if child.proc.returncode == EXIT_MODEL:  # refused: not worth restarting
                self._refused = (f"onnx engine {child.exit_reason()}",
                                 self._file_signature() or (0, 0))
                log.error("%s", self._refused[0])
            raise
        if pong != b"pong":
            raise BadResponse(f"onnx engine answered PING with {pong[:40]!r}")
        try:
            info = json.loads(await child.request(INFO, b"", 30.0))
            width, height = info["input"]
            facts = {"model": info["model"], "input": f"{width}x{height}",
                     "boxes": info["boxes"], "threads": info["threads"],
                     "load_s": info["load_s"], "obico_model": bool(info["obico"]),
                     "sha256": info["sha256"]}
        except (ValueError, KeyError, TypeError) as exc:
            raise BadResponse(f"onnx engine sent a garbled INFO: {exc}") from None
        self._refused = None
        sha = str(info["sha256"])
        if not info["obico"] and sha not in self._told_sha:
            self._told_sha.add(sha)
            log.warning("onnx: %s is not Obico's published model (sha256 %s, Obico's is %s): "
                        "it runs, but [detection]'s thresholds were tuned on Obico's model, "
                        "so p may not match them", self.model, sha[:16], OBICO.sha256[:16])
        return facts

    # -- the Predictor interface -----------------------------------------------------

    async def predict(self, jpeg: bytes, print_id: str,
                      context: PredictContext | None = None) -> Prediction:
        self._check_refused()
        self._req_id = (self._req_id + 1) & 0xFFFFFFFF
        req_id = self._req_id
        try:
            reply = await self.engine.request(INFER, REQ_ID.pack(req_id) + jpeg)
        except EngineStatusError as exc:
            if exc.status == BAD_PAYLOAD:
                raise BadRequest(str(exc)) from None
            raise
        return self._prediction(reply, req_id)

    def _check_refused(self) -> None:
        """A refused file is not loaded again until it changes (the refusal is logged once)."""
        if self._refused is not None:
            message, signature = self._refused
            if self._file_signature() == signature:
                raise BadResponse(f"{message} (fix or replace the file; it is tried again "
                                  "when it changes)")
            self._refused = None

    def _prediction(self, reply: bytes, req_id: int) -> Prediction:
        try:
            data = json.loads(reply)
            if data["req_id"] != req_id:
                raise BadResponse(f"onnx engine answered request {data['req_id']}, "
                                  f"not {req_id}")
            p = float(data["p"])
            detections = tuple(
                (float(conf), (float(box[0]), float(box[1]), float(box[2]), float(box[3])))
                for conf, box in data["detections"])
        except BadResponse:
            raise
        except (ValueError, KeyError, TypeError, IndexError) as exc:
            raise BadResponse(f"onnx engine sent a garbled INFER reply: {exc}") from None
        return Prediction(p=p, detections=detections, raw=data)

    # -- optional hooks the daemon, check and detect call ------------------------------

    async def start(self) -> None:
        """At daemon start: say now, not at the first print, if the file or runtime is missing.

        Only cheap checks (the worker itself starts with the first frame of a print).
        """
        await asyncio.to_thread(self._spec)

    async def warm_up(self) -> None:
        """Start the engine now (``detect``: its start-up is not a picture's time)."""
        self._check_refused()
        await self.engine.request(PING, timed=False)

    async def print_started(self) -> None:
        await self.engine.print_started()

    async def print_ended(self) -> None:
        await self.engine.print_ended()

    def engine_facts(self) -> dict[str, Any]:
        out = self.engine.facts()
        if self._refused is not None:
            out["refused"] = self._refused[0]
        return out

    def engine_summary(self) -> str:
        return self.engine.summary()

    async def close(self) -> None:
        await self.engine.close()
