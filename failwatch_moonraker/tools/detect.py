"""``failwatch-moonraker detect``: score pictures with the configured predictor.

For a user deciding whether to trust a model with a print: what it sees on
their own camera's pictures, how sure it is, and how long it takes. Any backend
works (local or remote); Moonraker is not needed. ``--set`` changes [predictor]
options through the same loader as failwatch.cfg, so the errors are the same.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from failwatch_moonraker.config import (
    DEFAULT_CONFIG_PATH,
    Config,
    ConfigError,
    load_config,
    parse_config,
)

DETECT_PRINT_ID = "failwatch-detect"


def add_command(sub: Any) -> None:
    detect = sub.add_parser(
        "detect", help="score pictures with the configured predictor and show what it sees",
        description="Score each picture with the predictor of failwatch.cfg (any backend, "
                    "local or remote) and print its failure score p, the detections and the "
                    "time taken. Moonraker is not needed.")
    detect.add_argument("images", nargs="+", metavar="IMAGE", help="JPEG (or PNG) pictures")
    detect.add_argument("-c", "--config", dest="detect_config", default=None, metavar="PATH",
                        help=f"configuration file (default: {DEFAULT_CONFIG_PATH} if it "
                             "exists, else the defaults)")
    detect.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="change one [predictor] option, e.g. --set backend=pinozcam "
                             "(repeatable)")
    detect.add_argument("--json", action="store_true",
                        help="one JSON object per picture per line")
    detect.add_argument("--annotate", metavar="DIR",
                        help="write each picture with its boxes drawn to DIR")


def config_with(path: str | None, sets: list[str]) -> Config:
    """failwatch.cfg (or the defaults) with ``--set`` applied to [predictor]."""
    from failwatch_moonraker.config import _Problems, _read

    overrides: dict[str, str] = {}
    for item in sets:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE, e.g. backend=pinozcam")
        overrides[key.strip()] = value.strip()
    text, where = "", "<defaults>"
    full = os.path.abspath(os.path.expanduser(path or DEFAULT_CONFIG_PATH))
    if path is not None or os.path.exists(full):
        if not overrides or not os.path.isfile(full):
            return load_config(full)  # (the loader's own errors for a missing file)
        try:
            text = Path(full).read_text(encoding="utf-8-sig")
        except OSError as exc:
            raise ConfigError(f"{full}: cannot read the config file ({exc.strerror})") from None
        where = full
    if not overrides:
        return parse_config(text, where)
    problems = _Problems(where)
    data = _read(text, problems)
    if data is None:
        raise ConfigError(problems.messages)
    data.setdefault("predictor", {}).update(overrides)
    return parse_config(_render(data), where)


def _render(data: dict[str, dict[str, str]]) -> str:
    lines: list[str] = []
    for section, options in data.items():
        lines.append(f"[{section}]")
        for option, value in options.items():
            body = value.replace("#", "\\#").replace("\n", "\n  ")
            lines.append(f"{option}: {body}")
    return "\n".join(lines) + "\n"


def run(args: argparse.Namespace, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    try:
        path = args.detect_config or getattr(args, "config", None)  # (-c before "detect")
        config = config_with(path, args.set)
    except ConfigError as exc:
        print(f"failwatch-moonraker: configuration error:\n{exc}", file=err)
        if "<defaults>" in str(exc):
            print(f"(no {DEFAULT_CONFIG_PATH}: pass your config with -c PATH, or choose a "
                  "backend with --set, e.g. --set backend=pinozcam)", file=err)
        return 2
    return asyncio.run(_detect(config, args.images, args.json, args.annotate, out, err))


async def _detect(config: Config, images: list[str], as_json: bool, annotate: str | None,
                  out: TextIO, err: TextIO) -> int:
    import aiohttp

    from failwatch_moonraker.predictors import PredictorError, create_predictor
    from failwatch_moonraker.predictors.local.engine import EngineMissing

    failed = 0
    if annotate:
        os.makedirs(annotate, exist_ok=True)
    async with aiohttp.ClientSession() as http:
        predictor = create_predictor(config.predictor, http, detection=config.detection)
        try:
            warm_up = getattr(predictor, "warm_up", None)
            if warm_up is not None:  # a local engine: its start-up is not a picture's time
                try:
                    await warm_up()
                except EngineMissing as exc:
                    print(f"failwatch-moonraker detect: {exc}", file=err)
                    return 2
                except PredictorError as exc:
                    print(f"failwatch-moonraker detect: the {predictor.name} engine did not "
                          f"start: {exc}", file=err)
                    return 2
            for image in images:
                try:
                    data = await asyncio.to_thread(Path(image).read_bytes)
                except OSError as exc:
                    failed += 1
                    _error(image, f"cannot read it ({exc.strerror})", as_json, out)
                    continue
                began = time.perf_counter()
                try:
                    pred = await predictor.predict(data, DETECT_PRINT_ID)
                except EngineMissing as exc:
                    print(f"failwatch-moonraker detect: {exc}", file=err)
                    return 2
                except PredictorError as exc:
                    failed += 1
                    _error(image, str(exc), as_json, out)
                    continue
                ms = (time.perf_counter() - began) * 1000.0
                saved = ""
                if annotate:
                    saved = await asyncio.to_thread(_annotate, data, pred, image, annotate,
                                                    predictor.name)
                _show(image, pred.p, pred.detections, ms, saved, as_json, out)
        finally:
            summary = getattr(predictor, "engine_summary", None)
            if summary is not None and not as_json:
                print(f"engine: {summary()}", file=out)
            await predictor.close()
    return 1 if failed else 0


def _show(image: str, p: float, detections: Any, ms: float, saved: str, as_json: bool,
          out: TextIO) -> None:
    if as_json:
        record: dict[str, Any] = {
            "image": image, "p": round(p, 6),
            "detections": [[round(c, 6), [round(v, 2) for v in box]] for c, box in detections],
            "ms": round(ms, 1)}
        if saved:
            record["annotated"] = saved
        print(json.dumps(record), file=out, flush=True)
        return
    print(f"{image}: p={p:.3f}, {len(detections)} detection(s), {ms:.0f} ms"
          + (f", drawn to {saved}" if saved else ""), file=out, flush=True)
    for conf, (xc, yc, w, h) in detections:
        print(f"  {conf:.2f} at ({xc:.0f}, {yc:.0f}), {w:.0f}x{h:.0f} px", file=out)


def _error(image: str, message: str, as_json: bool, out: TextIO) -> None:
    if as_json:
        print(json.dumps({"image": image, "error": message}), file=out, flush=True)
    else:
        print(f"{image}: not scored: {message}", file=out, flush=True)


def _annotate(data: bytes, pred: Any, image: str, folder: str, backend: str) -> str:
    from failwatch_moonraker.camera.annotate import draw

    caption = f"failwatch detect ({backend}): p={pred.p:.3f}"
    target = os.path.join(folder, Path(image).stem + ".annotated.jpg")
    try:
        Path(target).write_bytes(draw(data, pred.detections, caption, threshold=0.0))
    except OSError:
        return ""
    return target
