"""Download a model file: streamed to a temporary file beside the destination, verified, renamed.

Whatever goes wrong (an error page, a cut transfer, a wrong checksum, a full
disk, a folder that cannot be written) the user gets one clear sentence and
nothing is left behind: neither a partial destination nor the temporary file.
A destination that is already the right file is not fetched again.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import http.client
import os
import shutil
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, TextIO

from failwatch_moonraker import __version__

__all__ = ["FetchError", "FetchResult", "fetch", "sha256_of"]

CHUNK = 1 << 20
_MB = 1_000_000


class FetchError(Exception):
    """The file could not be fetched; nothing was left on disk."""


@dataclass(frozen=True)
class FetchResult:
    path: Path
    size: int
    fetched: bool  # False: the file was already there and verified


def sha256_of(path: Path, chunk: int = CHUNK) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _mb(n: float) -> str:
    return f"{n / _MB:,.1f} MB"


def _why(exc: OSError) -> str:
    return exc.strerror or str(exc) or exc.__class__.__name__


class Progress:
    """A bar on a terminal (size, speed, time left); a line per 10 % in a log."""

    def __init__(self, out: TextIO | None, total: int | None) -> None:
        self.out = out
        self.total = total
        self.started = time.monotonic()
        self.shown = 0.0
        self.tty = bool(out is not None and getattr(out, "isatty", lambda: False)())
        self.decile = -1

    def update(self, done: int, final: bool = False) -> None:
        if self.out is None:
            return
        now = time.monotonic()
        elapsed = max(now - self.started, 1e-6)
        speed = done / elapsed
        if self.total:
            frac = min(done / self.total, 1.0)
            left = (self.total - done) / speed if speed > 0 else 0.0
            decile = int(frac * 10)
            if not self.tty and not final and decile == self.decile:
                return
            self.decile = decile
            bar = "#" * int(frac * 30)
            text = (f"[{bar:<30}] {frac * 100:5.1f}% {_mb(done)} of {_mb(self.total)}  "
                    f"{_mb(speed)}/s  {'done' if final else f'{left:,.0f} s left'}")
        else:
            if not self.tty and not final and now - self.shown < 10:
                return
            text = f"{_mb(done)}  {_mb(speed)}/s"
        if self.tty and not final and now - self.shown < 0.25:
            return
        self.shown = now
        end = "\n" if final or not self.tty else ""
        print(("\r" if self.tty else "") + text, end=end, file=self.out, flush=True)


def _open(url: str, timeout: float) -> http.client.HTTPResponse:
    request = urllib.request.Request(
        url, headers={"User-Agent": f"failwatch-moonraker/{__version__}"})
    try:
        response = urllib.request.urlopen(request, timeout=timeout)  # noqa: S310 (http/https)
    except urllib.error.HTTPError as exc:
        raise FetchError(f"{url}: the server answered HTTP {exc.code} {exc.reason}") from None
    except urllib.error.URLError as exc:
        why = exc.reason
        reason = _why(why) if isinstance(why, OSError) else str(why)
        raise FetchError(f"cannot reach {url}: {reason}") from None
    except (OSError, http.client.HTTPException, ValueError) as exc:
        raise FetchError(f"cannot fetch {url}: {exc}") from None
    assert isinstance(response, http.client.HTTPResponse)
    return response


def _looks_like_a_page(head: bytes) -> bool:
    return head.lstrip().startswith(b"<")  # HTML or XML; an ONNX file starts with 0x08


def _make_folder(folder: Path) -> list[Path]:
    """Create ``folder`` and missing parents; the ones created, to remove if nothing lands."""
    created: list[Path] = []
    missing = []
    probe = folder
    while not probe.exists():
        missing.append(probe)
        if probe.parent == probe:
            break
        probe = probe.parent
    for path in reversed(missing):
        try:
            path.mkdir()
        except FileExistsError:
            continue
        except OSError as exc:
            _remove_folders(created)
            raise FetchError(f"cannot create the folder {path}: {_why(exc)}") from None
        created.append(path)
    if not folder.is_dir():
        _remove_folders(created)
        raise FetchError(f"{folder} is not a folder")
    return created


def _remove_folders(created: list[Path]) -> None:
    for path in reversed(created):
        with contextlib.suppress(OSError):
            path.rmdir()


def _write(fh: BinaryIO, data: bytes) -> None:  # one place for the disk's errors
    fh.write(data)


def fetch(
    url: str,
    sha256: str,
    dest: Path,
    *,
    min_size: int = 0,
    progress: TextIO | None = None,
    timeout: float = 30.0,
) -> FetchResult:
    """Fetch ``url`` to ``dest`` if it is not already there with this ``sha256``."""
    dest = Path(dest).expanduser()
    want = sha256.strip().lower()
    if dest.is_dir():
        raise FetchError(f"{dest} is a folder; give the path of the file to write")
    if dest.is_file():
        try:
            have = sha256_of(dest)
        except OSError as exc:
            raise FetchError(f"cannot read the existing {dest}: {_why(exc)}") from None
        if have == want:
            return FetchResult(dest, dest.stat().st_size, fetched=False)
        if progress is not None:
            print(f"{dest} is there but its sha256 is {have}, not {want}: fetching it again",
                  file=progress)
    created = _make_folder(dest.parent)
    tmp_path: Path | None = None
    done = False
    try:
        try:  # before asking the server: an unwritable folder is known without a download
            fd, name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part",
                                        dir=dest.parent)
        except OSError as exc:
            raise FetchError(f"cannot write in {dest.parent}: {_why(exc)}") from None
        tmp_path = Path(name)
        with os.fdopen(fd, "wb") as fh, _open(url, timeout) as response:
            got, have = _download(response, fh, url, dest.parent, min_size, progress)
        if got < min_size:
            raise FetchError(f"{url} sent only {got:,} bytes; the model is at least "
                             f"{min_size:,}, so this is not it")
        if have != want:
            raise FetchError(f"the file from {url} has sha256 {have}, not {want}: "
                             "not the published file (or damaged on the way)")
        os.chmod(tmp_path, 0o644)
        os.replace(tmp_path, dest)
        done = True
        return FetchResult(dest, got, fetched=True)
    finally:
        if not done:
            if tmp_path is not None:
                with contextlib.suppress(OSError):
                    tmp_path.unlink()
            _remove_folders(created)


def _download(response: http.client.HTTPResponse, fh: BinaryIO, url: str, folder: Path,
              min_size: int, progress: TextIO | None) -> tuple[int, str]:
    """Stream the body into ``fh``: (bytes written, their sha256)."""
    ctype = (response.headers.get("Content-Type") or "").lower()
    length_header = response.headers.get("Content-Length")
    total = int(length_header) if length_header and length_header.isdigit() else None
    if "text/html" in ctype:
        raise FetchError(f"{url} sent a web page ({ctype}), not the model file")
    if total is not None and total < min_size:
        raise FetchError(f"{url} offers {total:,} bytes; the model is at least "
                         f"{min_size:,}, so this is not it")
    if total is not None:
        free = shutil.disk_usage(folder).free
        if free < total:
            raise FetchError(f"not enough free space in {folder}: {_mb(free)} free, the "
                             f"file needs {_mb(total)}")
    digest = hashlib.sha256()
    got = 0
    bar = Progress(progress, total)
    while True:
        try:
            block = response.read(CHUNK)
        except http.client.IncompleteRead as exc:
            raise FetchError(_cut(url, got + len(exc.partial), total)) from None
        except (OSError, http.client.HTTPException) as exc:
            raise FetchError(f"the transfer from {url} broke after {got:,} bytes: "
                             f"{exc}") from None
        if not block:
            break
        if got == 0 and _looks_like_a_page(block[:64]):
            raise FetchError(f"{url} sent a web or XML page, not the model file")
        try:
            _write(fh, block)
        except OSError as exc:
            raise FetchError(_disk_error(exc, folder, total)) from None
        digest.update(block)
        got += len(block)
        bar.update(got)
    if total is not None and got != total:
        raise FetchError(_cut(url, got, total))
    try:
        fh.flush()
        os.fsync(fh.fileno())
    except OSError as exc:
        raise FetchError(_disk_error(exc, folder, total)) from None
    bar.update(got, final=True)
    return got, digest.hexdigest()


def _cut(url: str, got: int, total: int | None) -> str:
    of = f" of {total:,}" if total is not None else ""
    return f"the transfer from {url} was cut after {got:,}{of} bytes; try again"


def _disk_error(exc: OSError, folder: Path, total: int | None) -> str:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        need = f" (the file needs {_mb(total)})" if total else ""
        return f"the disk holding {folder} is full{need}"
    return f"cannot write in {folder}: {_why(exc)}"
