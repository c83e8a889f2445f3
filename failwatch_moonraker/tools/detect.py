"""``failwatch-moonraker detect``: score pictures with the configured predictor.

For a user deciding whether to trust a model with a print: what it sees on
their own camera's pictures, how sure it is, and how long it takes. Any backend
works (local or remote); Moonraker is not needed. ``--set`` changes [predictor]
options through the same loader as failwatch.cfg, so the errors are the same.

Pictures are taken as given (as Mainsail shows the camera: no flip or rotation
is applied). ``[camera] mask`` (or ``--mask``) is applied as the daemon does:
painted out before predicting, detections centred in it dropped, hatched in
``--annotate``'s pictures. ``[camera] max_pixels`` refuses huge pictures before
they are decoded.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from failwatch_moonraker.camera.mask import Mask, drop_masked, format_mask, parse_mask
from failwatch_moonraker.camera.pixels import DEFAULT_MAX_PIXELS, TooManyPixels
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
                        help="write each picture with its boxes drawn (and the mask "
                             "hatched) to DIR")
    detect.add_argument("--mask", default=None, metavar="X1,Y1,X2,Y2[;...]",
                        help="areas to ignore, as [camera] mask: rectangles in fractions "
                             "(0..1) of the picture, separated by ';' (default: [camera] "
                             "mask of the config; --mask '' for none)")


def config_with(path: str | None, sets: list[str]) -> Config:
    """failwatch.cfg (or the defaults) with ``--set`` applied to [predictor]."""
    from failwatch_moonraker.cfgfile import Problems, read_sections

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
    problems = Problems(where)
    data = read_sections(text, problems)
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
    mask = config.camera.mask
    mask_text = getattr(args, "mask", None)
    if mask_text is not None:
        try:
            mask = parse_mask(mask_text)
        except ValueError as exc:
            print(f"failwatch-moonraker detect: --mask: {exc}", file=err)
            return 2
    return asyncio.run(_detect(config, args.images, args.json, args.annotate, out, err,
                               mask=mask))


def _prepare(data: bytes, mask: Mask, max_pixels: int) -> tuple[bytes, tuple[int, int] | None]:
    """The picture as the predictor gets it, and its size: refused above the pixel
    limit before decoding; with a mask, painted out and re-encoded (as the daemon)."""
    from PIL import UnidentifiedImageError

    from failwatch_moonraker.camera.mask import paint
    from failwatch_moonraker.camera.pixels import open_checked

    try:
        img = open_checked(data, max_pixels, "the picture")
    except UnidentifiedImageError:
        if mask:
            raise
        return data, None  # not a picture Pillow knows: the predictor says what it thinks
    with img:
        size = img.size
        if not mask:
            return data, size
        out = paint(img.convert("RGB"), mask)
    buf = io.BytesIO()
    out.save(buf, format="JPEG", quality=90)
    return buf.getvalue(), size


async def _detect(config: Config, images: list[str], as_json: bool, annotate: str | None,
                  out: TextIO, err: TextIO, mask: Mask = ()) -> int:
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
                try:
                    data, size = await asyncio.to_thread(_prepare, data, mask,
                                                         config.camera.max_pixels)
                except TooManyPixels as exc:
                    failed += 1
                    _error(image, f"{exc}; scale it down, or raise [camera] max_pixels",
                           as_json, out)
                    continue
                except Exception as exc:  # Pillow raises many kinds on damaged data
                    failed += 1
                    _error(image, f"cannot decode it to apply the mask: {exc}", as_json, out)
                    continue
                began = time.perf_counter()
                try:
                    seen = await predictor.predict(data, DETECT_PRINT_ID)
                except EngineMissing as exc:
                    print(f"failwatch-moonraker detect: {exc}", file=err)
                    return 2
                except PredictorError as exc:
                    failed += 1
                    _error(image, str(exc), as_json, out)
                    continue
                ms = (time.perf_counter() - began) * 1000.0
                pred = drop_masked(seen, mask, size)
                dropped = len(seen.detections) - len(pred.detections)
                saved = ""
                if annotate:
                    saved = await asyncio.to_thread(_annotate, data, pred, image, annotate,
                                                    predictor.name, mask,
                                                    config.camera.max_pixels)
                _show(image, pred.p, pred.detections, ms, saved, as_json, out,
                      masked=(mask, dropped))
        finally:
            summary = getattr(predictor, "engine_summary", None)
            if summary is not None and not as_json:
                print(f"engine: {summary()}", file=out)
            await predictor.close()
    return 1 if failed else 0


def _show(image: str, p: float, detections: Any, ms: float, saved: str, as_json: bool,
          out: TextIO, masked: tuple[Mask, int] = ((), 0)) -> None:
    mask, dropped = masked
    if as_json:
        record: dict[str, Any] = {
            "image": image, "p": round(p, 6),
            "detections": [[round(c, 6), [round(v, 2) for v in box]] for c, box in detections],
            "ms": round(ms, 1)}
        if mask:
            record["mask"] = format_mask(mask)
            record["dropped"] = dropped
        if saved:
            record["annotated"] = saved
        print(json.dumps(record), file=out, flush=True)
        return
    in_mask = f" ({dropped} more centred in the mask, dropped)" if dropped else ""
    print(f"{image}: p={p:.3f}, {len(detections)} detection(s){in_mask}, {ms:.0f} ms"
          + (f", drawn to {saved}" if saved else ""), file=out, flush=True)
    for conf, (xc, yc, w, h) in detections:
        print(f"  {conf:.2f} at ({xc:.0f}, {yc:.0f}), {w:.0f}x{h:.0f} px", file=out)


def _error(image: str, message: str, as_json: bool, out: TextIO) -> None:
    if as_json:
        print(json.dumps({"image": image, "error": message}), file=out, flush=True)
    else:
        print(f"{image}: not scored: {message}", file=out, flush=True)


def _annotate(data: bytes, pred: Any, image: str, folder: str, backend: str,
              mask: Mask = (), max_pixels: int = DEFAULT_MAX_PIXELS) -> str:
    from failwatch_moonraker.camera.annotate import draw

    caption = f"failwatch detect ({backend}): p={pred.p:.3f}"
    target = os.path.join(folder, Path(image).stem + ".annotated.jpg")
    try:
        Path(target).write_bytes(draw(data, pred.detections, caption, threshold=0.0, mask=mask,
                                      max_pixels=max_pixels))
    except OSError:
        return ""
    return target
