"""``failwatch-moonraker check``: try every edge once and say what works.

The report is what a user reads while setting up: one line per step, the
reason when a step fails, never a secret. Exit status 0 only if all passed.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
from typing import Any, TextIO
from urllib.parse import urlsplit

import aiohttp

from failwatch_moonraker.camera.mask import format_mask
from failwatch_moonraker.camera.snapshot import (
    Camera,
    CameraError,
)
from failwatch_moonraker.cameras import camera_label, camera_source, cameras_of
from failwatch_moonraker.config import LOCAL_BACKENDS, Config
from failwatch_moonraker.daemon import Daemon
from failwatch_moonraker.placeholders import placeholder_problems
from failwatch_moonraker.predictors import (
    PredictContext,
    PredictorError,
    create_predictor,
    start_predictor,
)
from failwatch_moonraker.printer.moonraker import AuthFailed, MoonrakerError
from failwatch_moonraker.secrets import scrub

CHECK_PRINT_ID = "failwatch-check"


class Report:
    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.failed = 0

    def ok(self, step: str, detail: str) -> None:
        print(scrub(f"[ OK ] {step}: {detail}"), file=self.out, flush=True)

    def fail(self, step: str, detail: str) -> None:
        self.failed += 1
        print(scrub(f"[FAIL] {step}: {detail}"), file=self.out, flush=True)


async def run_check(config: Config, out: TextIO, timeout: float = 20.0) -> int:
    if config.printers:  # farm mode: every printer, one report each
        from failwatch_moonraker.farm import check_farm

        return await check_farm(config, out, timeout)
    report = Report(out)
    report.ok("config", f"{config.path} is valid")
    placeholders = placeholder_problems(config)
    for problem in placeholders:
        report.fail("predictor credentials", problem)
    daemon = Daemon(config)
    client = daemon.client
    reader: asyncio.Task[None] | None = None
    webcams: list[dict[str, Any]] = []
    try:
        try:
            reader = await asyncio.wait_for(client.open(), timeout)
        except AuthFailed as exc:
            report.fail("moonraker", str(exc))
        except (OSError, asyncio.TimeoutError, MoonrakerError, Exception) as exc:
            if _refused(exc):
                report.fail("moonraker", await _refused_advice(config))
            else:
                report.fail("moonraker", f"cannot connect to {config.moonraker.url} "
                            f"([moonraker] url): {exc.__class__.__name__}: {exc}")
        else:
            try:
                info = await client.call("server.info")
                report.ok("moonraker", f"connected to {config.moonraker.url} (Moonraker "
                          f"{info.get('moonraker_version', '?')}, Klippy "
                          f"{info.get('klippy_state', '?')})")
                listed = await client.call("server.webcams.list")
                webcams = listed.get("webcams", []) if isinstance(listed, dict) else []
            except MoonrakerError as exc:
                report.fail("moonraker", str(exc))
        async with aiohttp.ClientSession() as http:
            jpeg = b""
            camera: Camera | None = None
            for c in cameras_of(config):
                what, section = camera_label(c)
                one = Camera(http, c.timeout, c.max_size, max_pixels=c.max_pixels,
                             mask=c.mask)
                one.source = camera_source(c, config.moonraker.url, webcams)
                if one.source is None:
                    wanted = f"no webcam named '{c.webcam}'" if c.webcam else \
                        "no usable webcam"
                    report.fail(what, f"no snapshot_url in {section} and {wanted} in "
                                "Moonraker's webcam list")
                    continue
                try:
                    got = await one.snapshot()
                except CameraError as exc:
                    report.fail(what, str(exc))
                    continue
                masked = f", mask {format_mask(c.mask)} painted out" if c.mask else ""
                report.ok(what, f"{len(got) // 1024} KiB JPEG{_dimensions(got)} "
                          f"from {one.source.url}{masked}")
                if not jpeg:
                    jpeg, camera = got, one
            predictor = create_predictor(config.predictor, http, detection=config.detection,
                                         printer_name=config.name)
            try:
                health = getattr(predictor, "health", None)
                if health is not None:  # e.g. the Obico ML server's /hc/
                    try:
                        answer = await health()
                    except PredictorError as exc:
                        report.fail("predictor health", str(exc))
                    else:
                        report.ok("predictor health", f"{config.predictor.url} says {answer!r}")
                if placeholders:
                    report.fail("predictor", "not tried: the credentials are the example's "
                                "placeholders (see above)")
                elif jpeg:
                    await start_predictor(predictor)
                    context = PredictContext(
                        printer=config.name,
                        snapshot_url=camera.source.url if camera and camera.source else "")
                    try:
                        pred = await predictor.predict(jpeg, CHECK_PRINT_ID, context=context)
                    except PredictorError as exc:
                        report.fail("predictor", str(exc))
                    else:
                        where = (f"the local {predictor.name} engine"
                                 if config.predictor.backend in LOCAL_BACKENDS
                                 else config.predictor.url)
                        report.ok("predictor", f"{where} scored the snapshot "
                                  f"p={pred.p:.3f} with {len(pred.detections)} detection(s)")
                    _report_engine(report, predictor)
                else:
                    report.fail("predictor", "not tried: no snapshot to send")
            finally:
                await predictor.close()
    finally:
        if reader is not None:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reader
        await client.close()
    if report.failed:
        print(f"{report.failed} check(s) failed.", file=out)
        return 1
    print("All checks passed: failwatch is ready to watch your prints.", file=out)
    return 0


def _report_engine(report: Report, predictor: object) -> None:
    """A local engine: what runs, from where, how fast, how big."""
    facts_of = getattr(predictor, "engine_facts", None)
    if facts_of is None:
        return
    f = facts_of()
    if f.get("state") != "running":
        report.fail("engine", f"{f.get('package', '?')} {f.get('version', '')} not running: "
                    f"{f.get('last_error') or f.get('state')}")
        return

    def num(key: str, fmt: str) -> str:
        value = f.get(key)
        return format(value, fmt) if isinstance(value, (int, float)) else "?"

    report.ok("engine", f"{f.get('package')} {f.get('version')}, runner {f.get('runner')}, "
              f"model {f.get('model')}; started in {num('startup_s', '.2f')} s, "
              f"{num('last_ms', '.0f')} ms/frame, RSS {num('rss_mb', '.0f')} MB, "
              f"nice {f.get('nice')}, CPUs {f.get('cpus')}")


def _refused(exc: BaseException) -> bool:
    if isinstance(exc, ConnectionRefusedError):
        return True
    if isinstance(exc, OSError) and exc.errno == errno.ECONNREFUSED:
        return True
    # asyncio's happy eyeballs: "Multiple exceptions: [Errno 111] Connect call failed ..."
    return isinstance(exc, OSError) and "Connect call failed" in str(exc)


async def _socket_answers(path: str) -> bool:
    if not path or not os.path.exists(path):
        return False
    try:
        _, writer = await asyncio.wait_for(asyncio.open_unix_connection(path), 2.0)
    except (OSError, asyncio.TimeoutError):
        return False
    writer.close()
    with contextlib.suppress(Exception):
        await writer.wait_closed()
    return True


async def _refused_advice(config: Config) -> str:
    """After "connection refused": is Moonraker running, which url was tried, what next."""
    url = config.moonraker.url
    parts = urlsplit(url)
    where = f"{parts.hostname}:{parts.port or (443 if parts.scheme == 'wss' else 80)}"
    head = (f"connection refused at {url} ([moonraker] url in {config.path}): nothing "
            f"listens on {where}.")
    socket = config.moonraker.unix_socket
    if await _socket_answers(socket):
        return (f"{head} Moonraker is running (its socket {socket} answers), so the url is "
                "wrong: set [moonraker] url to the port in moonraker.conf [server] port "
                "(ws://127.0.0.1:7125/websocket by default), then run check again.")
    if parts.hostname in ("127.0.0.1", "localhost", "::1"):
        return (f"{head} Moonraker is not running on this host (its socket {socket} does not "
                "answer either): start it with 'sudo systemctl start moonraker' (see "
                "'systemctl status moonraker' and moonraker.log if it does not stay up), then "
                "run check again.")
    return (f"{head} Is Moonraker running on {parts.hostname}, and is the port right (moonraker"
            ".conf [server] port there)? Then run check again.")


def _dimensions(jpeg: bytes) -> str:
    try:
        import io

        from PIL import Image

        with Image.open(io.BytesIO(jpeg)) as img:
            return f" {img.width}x{img.height}"
    except Exception:
        return ""
