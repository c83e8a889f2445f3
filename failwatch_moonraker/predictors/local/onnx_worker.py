"""The ONNX engine: an Obico-style detector run with onnxruntime, in a process of its own.

``python -m failwatch_moonraker.predictors.local.onnx_worker MODEL [options]``

Started by the daemon's local-engine supervisor (at its nice value and CPU
list); speaks the engine wire format on stdin/stdout, one request at a time::

    request  [u32 cmd][u32 len][payload]      reply  [u32 status][u32 len][payload]

Commands: 1 PING -> ``pong``; 2 INFER, payload ``u32 req_id`` + the JPEG ->
JSON ``req_id, p, detections, width, height, decode_ms, infer_ms``; 3 INFO ->
JSON about the model and the session; 4 SHUTDOWN -> ``bye`` and exit 0.
Closing stdin also ends it. Statuses: 1 unknown command, 2 a payload that is
not a picture (the stream stays in step), 3 the model failed on this frame.

Exit codes: 2 bad arguments, 3 the model cannot be loaded or is refused (the
reason on stderr), 4 onnxruntime is not installed. onnxruntime, numpy and
Pillow are imported here only, never in the daemon.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import struct
import sys
import threading
import time
from typing import Any, BinaryIO

HEADER = struct.Struct("<II")
REQ_ID = struct.Struct("<I")
PING, INFER, INFO, SHUTDOWN = 1, 2, 3, 4
OK, UNKNOWN, BAD_PAYLOAD, FAILED = 0, 1, 2, 3
EXIT_ARGS, EXIT_MODEL, EXIT_RUNTIME = 2, 3, 4
INSTALL_HINT = ("pip install 'failwatch-moonraker[onnx]' in failwatch's virtualenv "
                "(or ./install.sh --local obico)")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="onnx_worker", description=__doc__.split("\n\n")[0])
    p.add_argument("model")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--confidence-threshold", type=float, default=0.08)
    p.add_argument("--nms-threshold", type=float, default=0.45)
    p.add_argument("--bending-factor", type=float, default=1.0)
    return p


class Engine:
    """The loaded model and Obico's pipeline around it."""

    def __init__(self, args: argparse.Namespace) -> None:
        import numpy as np
        import onnxruntime as ort

        from failwatch_moonraker.predictors.local import obico_pipeline as pipeline
        from failwatch_moonraker.predictors.local.catalog import OBICO
        from failwatch_moonraker.predictors.local.onnx_checks import Tensor, check_tensors

        self.np = np
        self.pipeline = pipeline
        self.args = args
        began = time.perf_counter()
        digest: dict[str, str] = {}
        hasher = threading.Thread(target=_hash_into, args=(args.model, digest), daemon=True)
        hasher.start()  # hashlib releases the GIL: the checksum costs no load time
        options = ort.SessionOptions()
        options.intra_op_num_threads = args.threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        # Idle worker threads must sleep, not spin: Klipper wants the CPU between frames.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.log_severity_level = 3
        self.session = ort.InferenceSession(args.model, options,
                                            providers=["CPUExecutionProvider"])

        def tensors(items: Any) -> list[Tensor]:
            return [Tensor(t.name, t.type, tuple(t.shape)) for t in items]

        self.width, self.height, self.count = check_tensors(
            args.model, tensors(self.session.get_inputs()), tensors(self.session.get_outputs()))
        self.input_name = self.session.get_inputs()[0].name
        self.output_names = [o.name for o in self.session.get_outputs()]
        warm = np.zeros((1, 3, self.height, self.width), np.float32)
        self.session.run(self.output_names, {self.input_name: warm})  # first run allocates
        hasher.join()
        self.sha256 = digest.get("sha256", "")
        self.load_s = time.perf_counter() - began
        self.info: dict[str, Any] = {
            "model": os.path.abspath(args.model),
            "size": os.path.getsize(args.model),
            "sha256": self.sha256,
            "obico": self.sha256 == OBICO.sha256,
            "input": [self.width, self.height],
            "boxes": self.count,
            "threads": args.threads,
            "confidence_threshold": args.confidence_threshold,
            "nms_threshold": args.nms_threshold,
            "bending_factor": args.bending_factor,
            "onnxruntime": ort.__version__,
            "load_s": round(self.load_s, 3),
        }

    def infer(self, payload: bytes) -> tuple[int, bytes]:
        if len(payload) < REQ_ID.size:
            return BAD_PAYLOAD, b"INFER needs a u32 request id and a JPEG"
        (req_id,) = REQ_ID.unpack_from(payload)
        began = time.perf_counter()
        try:
            from PIL import Image

            with Image.open(io.BytesIO(payload[REQ_ID.size:])) as img:
                img.load()
                rgb = self.np.asarray(img.convert("RGB"))
        except Exception as exc:  # Pillow raises many kinds for a bad picture
            return BAD_PAYLOAD, f"not a picture Pillow can decode: {exc}".encode()
        height, width = rgb.shape[:2]
        decoded = time.perf_counter()
        try:
            tensor = self.pipeline.to_input(rgb, self.width, self.height)
            boxes, confs = self.session.run(self.output_names, {self.input_name: tensor})[:2]
            ran = time.perf_counter()
            p, detections = self.pipeline.postprocess(
                boxes, confs, width, height, self.args.confidence_threshold,
                self.args.nms_threshold, self.args.bending_factor)
        except Exception as exc:
            return FAILED, f"the model failed on this frame: {exc}".encode()
        reply = {
            "req_id": req_id, "p": p, "detections": self.pipeline.detections_json(detections),
            "width": width, "height": height,
            "decode_ms": round((decoded - began) * 1000, 2),
            "infer_ms": round((ran - decoded) * 1000, 2),
        }
        return OK, json.dumps(reply).encode()


def _hash_into(path: str, out: dict[str, str]) -> None:
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as fh:
            while block := fh.read(1 << 20):
                digest.update(block)
    except OSError:
        return
    out["sha256"] = digest.hexdigest()


def _read_exactly(stream: BinaryIO, n: int) -> bytes | None:
    data = bytearray()
    while len(data) < n:
        chunk = stream.read(n - len(data))
        if not chunk:
            return None
        data += chunk
    return bytes(data)


def serve(engine: Engine, stdin: BinaryIO, stdout: BinaryIO) -> int:
    def reply(status: int, payload: bytes) -> None:
        stdout.write(HEADER.pack(status, len(payload)) + payload)
        stdout.flush()

    while True:
        header = _read_exactly(stdin, HEADER.size)
        if header is None:
            return 0
        cmd, length = HEADER.unpack(header)
        payload = _read_exactly(stdin, length) if length else b""
        if payload is None:
            return 0
        if cmd == PING:
            reply(OK, b"pong")
        elif cmd == INFER:
            reply(*engine.infer(payload))
        elif cmd == INFO:
            reply(OK, json.dumps(engine.info).encode())
        elif cmd == SHUTDOWN:
            reply(OK, b"bye")
            return 0
        else:
            reply(UNKNOWN, f"unknown command {cmd}".encode())


def main(argv: list[str] | None = None) -> int:
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:
        return EXIT_ARGS if exc.code else 0
    if not (1 <= args.threads <= 64):
        print("--threads must be from 1 to 64", file=sys.stderr)
        return EXIT_ARGS
    try:
        import numpy  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError as exc:
        print(f"{exc.name or 'onnxruntime'} is not installed for {sys.executable}: "
              f"{INSTALL_HINT}", file=sys.stderr, flush=True)
        return EXIT_RUNTIME
    from failwatch_moonraker.predictors.local.onnx_checks import ModelRefused

    try:
        engine = Engine(args)
    except ModelRefused as exc:
        print(f"model refused: {exc}", file=sys.stderr, flush=True)
        return EXIT_MODEL
    except Exception as exc:  # onnxruntime's own errors: not a model, truncated, unreadable
        text = " ".join(str(exc).split())[:400]
        print(f"cannot load {args.model}: {text}", file=sys.stderr, flush=True)
        return EXIT_MODEL
    return serve(engine, sys.stdin.buffer, sys.stdout.buffer)


if __name__ == "__main__":
    raise SystemExit(main())
