"""``failwatch-moonraker model fetch`` against a download host on 127.0.0.1.

Each case runs the real command and then looks at the disk: the file is there
and right, or nothing at all is (no destination, no temporary file, no folder
the command created).
"""

from __future__ import annotations

import asyncio
import errno
import hashlib
import os
import shutil
from pathlib import Path

import pytest

from failwatch_moonraker.predictors.local import fetch as fetch_mod
from failwatch_moonraker.predictors.local.catalog import MIRROR_ENV, OBICO
from sim.cli_run import CLI
from sim.model_server import FakeModelHost

PAYLOAD = bytes(range(256)) * 4096 + b"\x08\x07tail"  # ~1 MB, starts like no web page
SHA = hashlib.sha256(PAYLOAD).hexdigest()
WRONG = "0" * 64


async def fetch_cli(*args: str, home: Path, env: dict[str, str] | None = None,
                    timeout: float = 60.0) -> tuple[int, str, str]:
    full_env = {k: v for k, v in os.environ.items() if k != MIRROR_ENV}
    full_env.update(HOME=str(home), **(env or {}))
    proc = await asyncio.create_subprocess_exec(
        *CLI, "model", "fetch", *args, env=full_env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except asyncio.TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


@pytest.fixture
async def host() -> FakeModelHost:
    async with FakeModelHost() as h:
        h.files["good.onnx"] = PAYLOAD
        h.files[OBICO.url.rsplit("/", 1)[-1]] = PAYLOAD  # a mirror with a small wrong file
        yield h


async def test_good_file_is_fetched_verified_and_not_fetched_again(
        host: FakeModelHost, tmp_path: Path) -> None:
    dest = tmp_path / "models" / "m.onnx"
    code, out, err = await fetch_cli("--url", f"{host.url}/good.onnx", "--sha256", SHA,
                                     "--dest", str(dest), home=tmp_path)
    assert code == 0, err
    assert dest.read_bytes() == PAYLOAD
    assert listing(dest.parent) == ["m.onnx"]  # no temporary file left
    assert f"{len(PAYLOAD):,} bytes, sha256 verified" in out
    assert "100.0%" in err and "MB/s" in err  # the progress bar: size, speed
    assert oct(dest.stat().st_mode & 0o777) == "0o644"
    asked = len(host.requests)
    code, out, _ = await fetch_cli("--url", f"{host.url}/good.onnx", "--sha256", SHA.upper(),
                                   "--dest", str(dest), home=tmp_path)
    assert code == 0
    assert "already there with the right sha256; not fetched again" in out
    assert len(host.requests) == asked


async def test_a_damaged_existing_file_is_replaced(host: FakeModelHost, tmp_path: Path) -> None:
    dest = tmp_path / "m.onnx"
    dest.write_bytes(PAYLOAD[:1000])
    code, _, err = await fetch_cli("--url", f"{host.url}/good.onnx", "--sha256", SHA,
                                   "--dest", str(tmp_path), home=tmp_path)  # a folder: good.onnx
    assert code == 0, err
    assert (tmp_path / "good.onnx").read_bytes() == PAYLOAD
    code, _, err = await fetch_cli("--url", f"{host.url}/good.onnx", "--sha256", SHA,
                                   "--dest", str(dest), home=tmp_path)
    assert code == 0
    assert "fetching it again" in err
    assert dest.read_bytes() == PAYLOAD


@pytest.mark.parametrize("path, sha, message", [
    ("/good.onnx", WRONG, f"has sha256 {SHA}, not {WRONG}"),
    ("/page/good.onnx", SHA, "sent a web page (text/html"),
    ("/xml/good.onnx", SHA, "sent a web or XML page, not the model file"),
    ("/cut/good.onnx", SHA, "was cut after"),
    ("/missing.onnx", SHA, "the server answered HTTP 404 Not Found"),
])
async def test_failures_leave_nothing_behind(host: FakeModelHost, tmp_path: Path, path: str,
                                             sha: str, message: str) -> None:
    dest = tmp_path / "new" / "deeper" / "m.onnx"
    code, out, err = await fetch_cli("--url", host.url + path, "--sha256", sha,
                                     "--dest", str(dest), home=tmp_path)
    assert code == 1
    assert message in err
    assert "nothing was written." in err
    assert "Traceback" not in err
    assert not (tmp_path / "new").exists()  # the folders it made are gone too
    assert listing(tmp_path) == []


async def test_failure_keeps_an_existing_folder_and_its_files(host: FakeModelHost,
                                                              tmp_path: Path) -> None:
    (tmp_path / "other.txt").write_text("mine")
    code, _, err = await fetch_cli("--url", f"{host.url}/cut/good.onnx", "--sha256", SHA,
                                   "--dest", str(tmp_path / "m.onnx"), home=tmp_path)
    assert code == 1
    assert f"of {len(PAYLOAD):,} bytes; try again" in err
    assert listing(tmp_path) == ["other.txt"]


async def test_unwritable_folder(host: FakeModelHost, tmp_path: Path) -> None:
    if os.geteuid() == 0:  # root writes anywhere chmod allows; sysfs refuses even root
        folder = Path("/sys/kernel")
    else:
        folder = tmp_path / "ro"
        folder.mkdir()
        folder.chmod(0o555)
    before = listing(folder)
    code, _, err = await fetch_cli("--url", f"{host.url}/good.onnx", "--sha256", SHA,
                                   "--dest", str(folder / "m.onnx"), home=tmp_path)
    assert code == 1
    assert f"cannot write in {folder}: Permission denied" in err
    assert listing(folder) == before


async def test_obico_entry_refuses_a_file_under_the_size_floor(host: FakeModelHost,
                                                               tmp_path: Path) -> None:
    """The built-in entry, pointed at the local host as a mirror: a 1 MB file is not the model."""
    code, out, err = await fetch_cli("obico", home=tmp_path, env={MIRROR_ENV: host.url})
    assert code == 1
    assert "Obico's failure-detection model" in out and "AGPL-3.0 per Obico" in out
    assert f"offers {len(PAYLOAD):,} bytes; the model is at least 50,000,000" in err
    assert host.requests == ["/" + OBICO.url.rsplit("/", 1)[-1]]
    assert not (tmp_path / "printer_data").exists()


async def test_usage_errors(tmp_path: Path) -> None:
    code, _, err = await fetch_cli("--url", "http://127.0.0.1:1/x.onnx", home=tmp_path)
    assert code == 2 and "--url and --sha256 go together" in err
    code, _, err = await fetch_cli("resnet", home=tmp_path)
    assert code == 2 and "unknown model 'resnet'; known: obico" in err
    code, _, err = await fetch_cli("--url", "ftp://x/y", "--sha256", SHA, home=tmp_path)
    assert code == 2 and "must be an http:// or https:// address" in err
    code, _, err = await fetch_cli("--url", "http://127.0.0.1:9/x.onnx", "--sha256", "abc",
                                   home=tmp_path)
    assert code == 2 and "64 hex digits" in err


def _serve_in_thread(host_files: dict[str, bytes]):  # type: ignore[no-untyped-def]
    import http.server
    import threading

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            data = host_files[self.path.lstrip("/")]
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return server, thread


def test_full_disk_midway_and_up_front(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    server, thread = _serve_in_thread({"good.onnx": PAYLOAD})
    url = f"http://127.0.0.1:{server.server_address[1]}/good.onnx"
    try:
        def full(fh: object, data: bytes) -> None:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        monkeypatch.setattr(fetch_mod, "_write", full)
        with pytest.raises(fetch_mod.FetchError, match=r"the disk holding .* is full"):
            fetch_mod.fetch(url, SHA, tmp_path / "m.onnx")
        assert listing(tmp_path) == []
        monkeypatch.undo()

        usage = shutil.disk_usage(tmp_path)
        monkeypatch.setattr(fetch_mod.shutil, "disk_usage",
                            lambda p: usage._replace(free=1000))
        with pytest.raises(fetch_mod.FetchError, match=r"not enough free space in .*0\.0 MB "
                                                       r"free, the file needs 1\.0 MB"):
            fetch_mod.fetch(url, SHA, tmp_path / "m.onnx")
        assert listing(tmp_path) == []
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
