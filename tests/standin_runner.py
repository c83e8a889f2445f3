"""A stand-in for an engine runner (PiNozCam's runner protocol v1), with faults on demand.

Usage: ``python standin_runner.py MODE [model w h score_thr sensitivity cpus nice]``.
MODE ``ok`` answers like the real runner (INFER: one box over the content
rectangle scoring 0.95, one over its top-left quarter scoring 0.5); the other
modes misbehave as named. Only the standard library: it is a separate process.
"""

from __future__ import annotations

import json
import os
import signal
import struct
import sys
import time

HEADER = struct.Struct("<II")
PROC_W, PROC_H = 640, 384
IN_BYTES = PROC_W * PROC_H * 3


def reply(status: int, payload: bytes = b"") -> None:
    sys.stdout.buffer.write(HEADER.pack(status, len(payload)) + payload)
    sys.stdout.buffer.flush()


def read_exactly(n: int) -> bytes | None:
    data = b""
    while len(data) < n:
        chunk = sys.stdin.buffer.read(n - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def main() -> int:
    mode = sys.argv[1] if len(sys.argv) > 1 else "ok"
    args = sys.argv[2:]
    if mode == "exit2":
        print("usage: runner model w h score_thr sensitivity cpus nice", file=sys.stderr)
        return 2
    if mode == "exit3":
        print("error: cannot load model", file=sys.stderr)
        return 3
    if mode == "slow_start":
        time.sleep(60)
    marker = os.environ.get("STANDIN_STARTS")
    if marker:
        with open(marker, "a", encoding="ascii") as handle:
            handle.write(f"{os.getpid()}\n")
    thr = float(args[3]) if len(args) > 3 else 0.87
    sens = float(args[4]) if len(args) > 4 else 0.04
    frames = 0
    while True:
        header = read_exactly(8)
        if header is None:
            return 0
        cmd, length = HEADER.unpack(header)
        payload = read_exactly(length) if length else b""
        if payload is None:
            return 0
        if cmd == 1:
            reply(0, b"pong")
        elif cmd == 3:
            info = {"model": args[0] if args else "standin.pte",
                    "proc_w": PROC_W if mode != "bad_info" else 416, "proc_h": PROC_H,
                    "in_bytes": IN_BYTES, "n_outputs": 10, "score_thr": thr,
                    "sensitivity": sens, "cpus": args[5] if len(args) > 5 else "",
                    "nice": os.getpriority(os.PRIO_PROCESS, 0),
                    "affinity": sorted(os.sched_getaffinity(0))}
            reply(0, json.dumps(info).encode())
        elif cmd == 4:
            reply(0, b"bye")
            return 0
        elif cmd == 2:
            frames += 1
            if frames == 1 and mode not in ("hang_first", "die_first"):
                pass  # the warm-up frame always works (except where the mode says)
            elif mode in ("hang", "hang_first"):
                time.sleep(3600)
            elif mode in ("die", "die_first"):
                os.kill(os.getpid(), signal.SIGKILL)
            elif mode == "eof":
                return 0
            elif mode == "short":
                sys.stdout.buffer.write(HEADER.pack(0, 100) + b"{\"scores\"")
                sys.stdout.buffer.flush()
                return 1
            elif mode == "garbled":
                sys.stdout.buffer.write(b"Segmentation fault (core dumped)\n" * 4)
                sys.stdout.buffer.flush()
                continue
            elif mode == "bad_status":
                reply(3, b"execution failed")
                continue
            elif mode == "not_json":
                reply(0, b"<html>not json</html>")
                continue
            if length != 4 + 16 + IN_BYTES:
                reply(2, b"bad payload length")
                continue
            req_id, x, y, w, h = struct.unpack_from("<I4i", payload)
            if mode == "wrong_req_id":
                req_id += 1
            boxes = [[x, y, x + w, y + h], [x, y, x + w / 2, y + h / 2]]
            answer = {"scores": [0.95, 0.5], "boxes": boxes, "labels": [1, 1],
                      "severity": 1.0, "percentage_area": 1.0, "total_area": float(w * h),
                      "req_id": req_id}
            if mode == "nan":
                answer["severity"] = "NaN"
            reply(0, json.dumps(answer).encode())
        else:
            reply(1, b"unknown command")


if __name__ == "__main__":
    sys.exit(main())
