"""``failwatch-moonraker model fetch``: put a model file on this host, verified."""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import urlparse

from failwatch_moonraker.predictors.local.catalog import (
    MODELS,
    MODELS_DIR,
    default_model_path,
    source_url,
)


def add_commands(sub: Any) -> None:
    model = sub.add_parser("model", help="fetch a model to run on this host",
                           description="Manage the model files local back-ends run.")
    msub = model.add_subparsers(dest="model_command", metavar="ACTION")
    fetch = msub.add_parser(
        "fetch", help="download a model and verify its sha256",
        description="Download a model file with a progress bar, verify its sha256 and move "
                    "it into place; a file already there with the right checksum is kept. "
                    f"Known models: {', '.join(MODELS)}. Default folder: {MODELS_DIR}/")
    fetch.add_argument("name", nargs="?", metavar="NAME",
                       help=f"a known model ({', '.join(MODELS)}; the default without --url)")
    fetch.add_argument("--url", metavar="URL", help="fetch any file from this http(s) URL "
                       "(needs --sha256)")
    fetch.add_argument("--sha256", metavar="HEX", help="the file's expected sha256")
    fetch.add_argument("--dest", metavar="PATH",
                       help="the file to write, or an existing folder to write it into")


def run(args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None) -> int:
    out = out or sys.stdout
    err = err or sys.stderr
    if getattr(args, "model_command", None) != "fetch":
        print("failwatch-moonraker model: say what to do, e.g. "
              "'failwatch-moonraker model fetch obico'", file=err)
        return 2
    from failwatch_moonraker.predictors.local.fetch import FetchError, fetch

    problem = _usage(args)
    if problem:
        print(f"failwatch-moonraker model fetch: {problem}", file=err)
        return 2
    if args.url:
        url, sha, floor, notice = args.url, args.sha256.lower(), 0, ""
        filename = Path(urlparse(url).path).name or "model.onnx"
        default = Path(MODELS_DIR).expanduser() / filename
    else:
        entry = MODELS[args.name or "obico"]
        url, sha, floor, notice = source_url(entry), entry.sha256, entry.min_size, entry.notice
        filename, default = entry.filename, default_model_path(entry)
    dest = Path(args.dest).expanduser() if args.dest else default
    if args.dest and (dest.is_dir() or args.dest.endswith("/")):
        dest = dest / filename
    if notice:
        print(f"{notice}.", file=out)
    print(f"fetching {url}\n      to {dest}", file=out, flush=True)
    try:
        result = fetch(url, sha, dest, min_size=floor, progress=err)
    except FetchError as exc:
        print(f"failwatch-moonraker model fetch: {exc}", file=err)
        print("nothing was written.", file=err)
        return 1
    if result.fetched:
        print(f"{dest}: {result.size:,} bytes, sha256 verified.", file=out)
    else:
        print(f"{dest} is already there with the right sha256; not fetched again.", file=out)
    return 0


def _usage(args: argparse.Namespace) -> str:
    if args.url or args.sha256:
        if args.name:
            return "give either a model name or --url with --sha256, not both"
        if not (args.url and args.sha256):
            return "--url and --sha256 go together"
        if not re.fullmatch(r"[0-9a-fA-F]{64}", args.sha256):
            return f"--sha256 must be 64 hex digits, got {args.sha256!r}"
        if urlparse(args.url).scheme not in ("http", "https"):
            return f"--url must be an http:// or https:// address, got {args.url!r}"
        return ""
    if args.name and args.name not in MODELS:
        return f"unknown model {args.name!r}; known: {', '.join(MODELS)} (or --url with --sha256)"
    return ""
