"""install.sh in a fake home with systemctl stubbed: every file it writes and every call.

Each test copies the installer, the unit template and the config files into a fake
checkout under tmp_path, builds a fake HOME with printer_data folder(s) and a fake
``<prefix>/etc/systemd/system`` holding Moonraker's unit(s), and runs
``bash install.sh --prefix <prefix> --no-pip --allow-root`` with ``SYSTEMCTL`` pointing
at a stub that records its arguments.  ``--no-pip`` creates the venv without pip and
installs nothing (no network).
"""

from __future__ import annotations

import configparser
import os
import pwd
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TIMEOUT = 60  # seconds per installer run; a run takes well under one
DEFAULT_ORIGIN = "https://github.com/failwatch/failwatch-moonraker.git"
SAVE_CONFIG = "#*# <---------------------- SAVE_CONFIG ---------------------->"
PRINTER_CFG_HEAD = "[printer]\nkinematics: none\n\n[include mainsail.cfg]\n\n"
PRINTER_CFG_TAIL = (
    f"{SAVE_CONFIG}\n"
    "#*# DO NOT EDIT THIS BLOCK OR BELOW. The contents are auto-generated.\n"
    "#*#\n"
    "#*# [probe]\n"
    "#*# z_offset = 1.250\n"
)
PRINTER_CFG = PRINTER_CFG_HEAD + PRINTER_CFG_TAIL
MACROS_INCLUDE = "[include failwatch_macros.cfg]"
UPDATE_INCLUDE = "[include failwatch-update.cfg]"
MOONRAKER_DEFAULT_ASVC = [
    "klipper_mcu",
    "webcamd",
    "MoonCord",
    "KlipperScreen",
    "moonraker-telegram-bot",
    "moonraker-obico",
    "sonar",
    "crowsnest",
    "octoeverywhere",
    "ratos-configurator",
]


def moonraker_conf(port: int) -> str:
    return (
        f"[server]\nhost: 0.0.0.0\nport: {port}\n\n[authorization]\ntrusted_clients:\n  127.0.0.1\n"
    )


@dataclass
class Host:
    """A fake Klipper host: HOME, a systemd prefix, a checkout and a systemctl stub."""

    tmp: Path
    home: Path
    prefix: Path
    repo: Path
    calls_log: Path
    stub: Path

    @property
    def unit_dir(self) -> Path:
        return self.prefix / "etc/systemd/system"

    @property
    def venv(self) -> Path:
        return self.home / "failwatch-moonraker-env"

    def data(self, suffix: str = "") -> Path:
        return self.home / (f"printer_{suffix}_data" if suffix else "printer_data")

    def add_data(self, suffix: str = "", port: int = 7125) -> Path:
        data = self.data(suffix)
        for sub in ("config", "logs", "systemd", "comms"):
            (data / sub).mkdir(parents=True, exist_ok=True)
        (data / "config/moonraker.conf").write_text(moonraker_conf(port))
        (data / "config/printer.cfg").write_text(PRINTER_CFG)
        (data / "systemd/moonraker.env").write_text(
            f'MOONRAKER_DATA_PATH="{data}"\nMOONRAKER_ARGS="-m moonraker"\n'
        )
        return data

    def add_moonraker(self, suffix: str = "", port: int = 7125) -> Path:
        """A data folder and its moonraker[-suffix].service pointing at it."""
        data = self.add_data(suffix, port)
        name = f"moonraker-{suffix}" if suffix else "moonraker"
        (self.unit_dir / f"{name}.service").write_text(
            "[Unit]\nDescription=API Server for Klipper SV1\n"
            "Requires=network-online.target\nAfter=network-online.target\n\n"
            "[Service]\nType=simple\nUser=pi\nSupplementaryGroups=moonraker-admin\n"
            f"EnvironmentFile={data}/systemd/moonraker.env\n"
            "ExecStart=/home/pi/moonraker-env/bin/python $MOONRAKER_ARGS\n"
            "Restart=always\nRestartSec=10\n\n[Install]\nWantedBy=multi-user.target\n"
        )
        return data

    def run(
        self, *args: str, expect_rc: int | None = 0, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        full_env = {
            "HOME": str(self.home),
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "LANG": "C",
            "SYSTEMCTL": str(self.stub),
        }
        full_env.update(env or {})
        proc = subprocess.run(
            [
                "bash",
                str(self.repo / "install.sh"),
                "--prefix",
                str(self.prefix),
                "--no-pip",
                *args,
            ],
            env=full_env,
            cwd=self.tmp,
            stdin=subprocess.DEVNULL,  # never a tty: no questions
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
        )
        if expect_rc is not None:
            assert proc.returncode == expect_rc, (
                f"install.sh {' '.join(args)} exited {proc.returncode}\n"
                f"--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}"
            )
        return proc

    def run_on_tty(self, *args: str, answers: str) -> tuple[int, str]:
        """Run with a terminal as stdin (typed ``answers``); return (rc, stdout+stderr)."""
        master, slave = os.openpty()
        try:
            os.write(master, answers.encode())
            proc = subprocess.run(
                [
                    "bash",
                    str(self.repo / "install.sh"),
                    "--prefix",
                    str(self.prefix),
                    "--no-pip",
                    "--allow-root",
                    *args,
                ],
                env={
                    "HOME": str(self.home),
                    "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                    "LANG": "C",
                    "SYSTEMCTL": str(self.stub),
                },
                cwd=self.tmp,
                stdin=slave,
                capture_output=True,
                text=True,
                timeout=TIMEOUT,
            )
        finally:
            os.close(slave)
            os.close(master)
        return proc.returncode, proc.stdout + proc.stderr

    def install(self, *args: str, **kw) -> subprocess.CompletedProcess[str]:
        return self.run("--allow-root", *args, **kw)

    def calls(self) -> list[str]:
        if not self.calls_log.exists():
            return []
        return self.calls_log.read_text().splitlines()

    def clear_calls(self) -> None:
        self.calls_log.unlink(missing_ok=True)

    def snapshot(self) -> dict[str, tuple]:
        """Every folder, file (content, mode) and link (target) under HOME and the prefix."""
        snap: dict[str, tuple] = {}
        for top in (self.home, self.prefix):
            for dirpath, dirnames, filenames in os.walk(top):
                for name in dirnames + filenames:
                    path = Path(dirpath) / name
                    key = str(path.relative_to(self.tmp))
                    if path.is_symlink():
                        snap[key] = ("link", os.readlink(path))
                    elif path.is_dir():
                        snap[key] = ("dir",)
                    else:
                        snap[key] = ("file", path.read_bytes(), path.stat().st_mode)
        return snap


@pytest.fixture
def host(tmp_path: Path) -> Host:
    repo = tmp_path / "failwatch-moonraker"
    (repo / "systemd").mkdir(parents=True)
    (repo / "config").mkdir()
    for rel in (
        "install.sh",
        "systemd/failwatch.service",
        "config/failwatch.cfg.example",
        "requirements.txt",
    ):
        shutil.copy2(REPO / rel, repo / rel)
    macros = REPO / "config/failwatch_macros.cfg"
    if macros.exists():
        shutil.copy2(macros, repo / "config/failwatch_macros.cfg")
    else:  # written by someone else; a placeholder keeps this test independent of it
        (repo / "config/failwatch_macros.cfg").write_text("# placeholder\n")
    home = tmp_path / "home"
    home.mkdir()
    prefix = tmp_path / "root"
    (prefix / "etc/systemd/system").mkdir(parents=True)
    calls_log = tmp_path / "systemctl-calls.log"
    stub = tmp_path / "systemctl-stub"
    stub.write_text(f'#!/bin/sh\nprintf "%s\\n" "$*" >> "{calls_log}"\n')
    stub.chmod(0o755)
    return Host(tmp_path, home, prefix, repo, calls_log, stub)


def unit_settings(text: str) -> dict[str, list[str]]:
    settings: dict[str, list[str]] = {}
    for line in text.splitlines():
        if "=" in line and not line.startswith(("#", ";", "[")):
            key, value = line.split("=", 1)
            settings.setdefault(key.strip(), []).append(value.strip())
    return settings


def read_moonraker_cfg(path: Path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(path.read_text())
    return parser


def current_user() -> str:
    return pwd.getpwuid(os.getuid()).pw_name


# ------------------------------------------------------------------ one instance


def test_install_writes_every_file(host: Host) -> None:
    data = host.add_moonraker()
    out = host.install("--yes").stdout
    cfg_dir = data / "config"

    # The unit: every placeholder filled.
    unit_path = host.unit_dir / "failwatch.service"
    unit = unit_path.read_text()
    assert "@" not in unit and "#%" not in unit
    s = unit_settings(unit)
    assert s["User"] == [current_user()]
    assert s["WorkingDirectory"] == [str(host.repo)]
    assert s["EnvironmentFile"] == [str(data / "systemd/failwatch.env")]
    assert s["ExecStart"] == [f"{host.venv}/bin/python -m failwatch_moonraker $FAILWATCH_ARGS"]
    assert s["After"] == ["moonraker.service network-online.target"]
    assert s["Wants"] == ["network-online.target"]
    assert s["Restart"] == ["always"]
    assert s["RestartSec"] == ["10"]
    assert s["WantedBy"] == ["multi-user.target"]
    for key, value in [
        ("NoNewPrivileges", "true"),
        ("PrivateTmp", "true"),
        ("ProtectSystem", "full"),
        ("ProtectKernelTunables", "true"),
        ("ProtectControlGroups", "true"),
        ("RestrictSUIDSGID", "true"),
    ]:
        assert s[key] == [value], key
    assert "ProtectHome" not in s  # failwatch writes below ~/printer_data
    assert str(data) in s["Description"][0]
    assert oct(unit_path.stat().st_mode & 0o777) == "0o644"

    # systemd's own check of the filled unit (the venv python exists: --no-pip made it).
    analyze = shutil.which("systemd-analyze")
    if analyze:
        verify = subprocess.run(
            [analyze, "verify", str(unit_path)], capture_output=True, text=True, timeout=TIMEOUT
        )
        assert verify.returncode == 0, verify.stdout + verify.stderr

    # The env file.
    assert (data / "systemd/failwatch.env").read_text().splitlines()[-1] == (
        f'FAILWATCH_ARGS="--config {cfg_dir}/failwatch.cfg"'
    )

    # moonraker.asvc did not exist: Moonraker's defaults plus failwatch, once.
    asvc = (data / "moonraker.asvc").read_text().splitlines()
    assert asvc == MOONRAKER_DEFAULT_ASVC + ["failwatch"]

    # The update manager entry in its own file, included once from moonraker.conf.
    upd = read_moonraker_cfg(cfg_dir / "failwatch-update.cfg")
    assert upd.sections() == ["update_manager failwatch"]
    assert dict(upd["update_manager failwatch"]) == {
        "type": "git_repo",
        "path": str(host.repo),
        "origin": DEFAULT_ORIGIN,  # the fake checkout is no git repo
        "primary_branch": "main",
        "virtualenv": str(host.venv),
        "requirements": "requirements.txt",
        "managed_services": "failwatch",
    }
    assert (cfg_dir / "moonraker.conf").read_text() == moonraker_conf(7125) + UPDATE_INCLUDE + "\n"

    # failwatch.cfg is the example; the macros are a link into the checkout.
    assert (cfg_dir / "failwatch.cfg").read_bytes() == (
        host.repo / "config/failwatch.cfg.example"
    ).read_bytes()
    link = cfg_dir / "failwatch_macros.cfg"
    assert link.is_symlink()
    assert os.readlink(link) == str(host.repo / "config/failwatch_macros.cfg")

    # printer.cfg: the include right above the SAVE_CONFIG block, nothing else changed.
    assert (cfg_dir / "printer.cfg").read_text() == (
        PRINTER_CFG_HEAD + MACROS_INCLUDE + "\n" + PRINTER_CFG_TAIL
    )

    # systemctl: reload, enable, (re)start.
    assert host.calls() == [
        "daemon-reload",
        "enable failwatch.service",
        "restart failwatch.service",
    ]

    # --no-pip: a venv with python but without pip, nothing installed.
    assert (host.venv / "bin/python").exists()
    assert not (host.venv / "bin/pip").exists()
    assert "skipping pip" in out
    assert "restart Moonraker" in out and "RESTART" in out


def test_rerun_changes_nothing_and_restarts(host: Host) -> None:
    data = host.add_moonraker()
    host.install("--yes")
    first = host.snapshot()
    host.clear_calls()
    out = host.install("--yes").stdout
    assert host.snapshot() == first
    assert (data / "moonraker.asvc").read_text().splitlines().count("failwatch") == 1
    assert (data / "config/moonraker.conf").read_text().count(UPDATE_INCLUDE) == 1
    assert (data / "config/printer.cfg").read_text().count(MACROS_INCLUDE) == 1
    assert "keeping your" in out
    # Re-running after an update restarts the service on the new code.
    assert host.calls() == [
        "daemon-reload",
        "enable failwatch.service",
        "restart failwatch.service",
    ]


def test_user_files_are_kept(host: Host) -> None:
    data = host.add_moonraker()
    cfg = data / "config/failwatch.cfg"
    cfg.write_text("[predictor]\nserial_no: MINE\naccess_token: SECRET\n")
    os.utime(cfg, (1_000_000_000, 1_000_000_000))
    # An existing asvc without a final newline, and an include already in printer.cfg.
    (data / "moonraker.asvc").write_text("crowsnest\nKlipperScreen")
    printer_cfg = data / "config/printer.cfg"
    printer_cfg.write_text(f"{MACROS_INCLUDE}\n" + PRINTER_CFG)
    out = host.install("--yes").stdout
    assert cfg.read_text() == "[predictor]\nserial_no: MINE\naccess_token: SECRET\n"
    assert cfg.stat().st_mtime == 1_000_000_000
    assert f"keeping your {cfg}" in out
    assert (data / "moonraker.asvc").read_text() == "crowsnest\nKlipperScreen\nfailwatch\n"
    assert printer_cfg.read_text() == f"{MACROS_INCLUDE}\n" + PRINTER_CFG


def test_own_macros_file_is_not_replaced(host: Host) -> None:
    data = host.add_moonraker()
    own = data / "config/failwatch_macros.cfg"
    own.write_text("# my copy\n")
    proc = host.install("--yes")
    assert not own.is_symlink() and own.read_text() == "# my copy\n"
    assert "leaving it" in proc.stderr


def test_printer_cfg_needs_consent(host: Host) -> None:
    data = host.add_moonraker()
    out = host.install().stdout  # no --yes, stdin is no tty
    assert (data / "config/printer.cfg").read_text() == PRINTER_CFG
    assert MACROS_INCLUDE in out and "--yes" in out
    assert (data / "config/failwatch_macros.cfg").is_symlink()  # the link is harmless


def test_printer_cfg_without_save_config_block(host: Host) -> None:
    data = host.add_moonraker()
    printer_cfg = data / "config/printer.cfg"
    printer_cfg.write_text("[printer]\nkinematics: none")  # no final newline either
    host.install("--yes")
    assert printer_cfg.read_text() == f"[printer]\nkinematics: none\n{MACROS_INCLUDE}\n"


def test_origin_is_the_checkouts_remote(host: Host) -> None:
    if not shutil.which("git"):
        pytest.skip("git is not installed")
    url = "https://example.com/someone/failwatch-moonraker.git"
    subprocess.run(["git", "init", "-q", str(host.repo)], check=True, timeout=TIMEOUT)
    subprocess.run(
        ["git", "-C", str(host.repo), "remote", "add", "origin", url], check=True, timeout=TIMEOUT
    )
    data = host.add_moonraker()
    host.install()
    upd = read_moonraker_cfg(data / "config/failwatch-update.cfg")
    assert upd["update_manager failwatch"]["origin"] == url


def test_own_update_manager_section_is_respected(host: Host) -> None:
    data = host.add_moonraker()
    conf = data / "config/moonraker.conf"
    conf.write_text(moonraker_conf(7125) + "\n[update_manager failwatch]\ntype: git_repo\n")
    before = conf.read_text()
    proc = host.install()
    assert conf.read_text() == before
    assert not (data / "config/failwatch-update.cfg").exists()
    assert "has its own [update_manager failwatch]" in proc.stderr


def test_companion_units_are_not_instances(host: Host) -> None:
    data = host.add_moonraker()
    (host.unit_dir / "moonraker-telegram-bot.service").write_text(
        f"[Service]\nEnvironmentFile={data}/systemd/moonraker-telegram-bot.env\n"
        "ExecStart=/home/pi/moonraker-telegram-bot-env/bin/python $MOONRAKER_BOT_ARGS\n"
    )
    (host.unit_dir / "moonraker-obico.service").write_text(
        "[Service]\nExecStart=/home/pi/moonraker-obico-env/bin/python -m moonraker_obico.app\n"
    )
    host.install()
    assert (host.unit_dir / "failwatch.service").exists()


def test_data_folders_without_units(host: Host) -> None:
    """No moonraker*.service: the ~/*_data folders are the instances."""
    data = host.add_data()
    host.install()
    assert unit_settings((host.unit_dir / "failwatch.service").read_text())["EnvironmentFile"] == [
        str(data / "systemd/failwatch.env")
    ]


def test_data_path_from_moonraker_env(host: Host) -> None:
    """MOONRAKER_DATA_PATH in the env file wins over the env file's location."""
    data = host.add_data()
    env_dir = host.tmp / "elsewhere/systemd"
    env_dir.mkdir(parents=True)
    (env_dir / "moonraker.env").write_text(f"MOONRAKER_DATA_PATH={data}\n")
    (host.unit_dir / "moonraker.service").write_text(
        f"[Service]\nEnvironmentFile=-{env_dir}/moonraker.env\n"
    )
    host.install()
    assert (data / "systemd/failwatch.env").exists()


# ------------------------------------------------------------------ several instances


def test_instance_flag_picks_the_instance(host: Host) -> None:
    data1 = host.add_moonraker()
    data2 = host.add_moonraker("2", port=7126)
    before_1 = {k: v for k, v in host.snapshot().items() if "printer_data" in k}
    host.install("--instance", "2", "--yes")
    cfg_dir = data2 / "config"

    s = unit_settings((host.unit_dir / "failwatch-2.service").read_text())
    assert not (host.unit_dir / "failwatch.service").exists()
    assert s["EnvironmentFile"] == [str(data2 / "systemd/failwatch-2.env")]
    assert s["After"] == ["moonraker-2.service network-online.target"]
    assert s["ExecStart"] == [f"{host.venv}/bin/python -m failwatch_moonraker $FAILWATCH_ARGS"]
    assert (data2 / "systemd/failwatch-2.env").read_text().splitlines()[-1] == (
        f'FAILWATCH_ARGS="--config {cfg_dir}/failwatch.cfg"'
    )
    assert (data2 / "moonraker.asvc").read_text().splitlines()[-1] == "failwatch-2"
    upd = read_moonraker_cfg(cfg_dir / "failwatch-update.cfg")
    assert upd.sections() == ["update_manager failwatch-2"]
    assert upd["update_manager failwatch-2"]["managed_services"] == "failwatch-2"
    assert (cfg_dir / "moonraker.conf").read_text().count(UPDATE_INCLUDE) == 1
    assert (cfg_dir / "printer.cfg").read_text().count(MACROS_INCLUDE) == 1
    assert (cfg_dir / "failwatch_macros.cfg").is_symlink()
    assert host.calls() == [
        "daemon-reload",
        "enable failwatch-2.service",
        "restart failwatch-2.service",
    ]

    # The copied failwatch.cfg points at this instance's socket, port, statistics, logs.
    example = (host.repo / "config/failwatch.cfg.example").read_text().splitlines()
    copied = (cfg_dir / "failwatch.cfg").read_text().splitlines()
    assert len(copied) == len(example)
    moved = 0
    for ex, cp in zip(example, copied, strict=True):
        m = re.match(r"#(\w+): ~/printer_data/(.*)$", ex)
        if m:
            assert cp == f"{m[1]}: {data2}/{m[2]}"
            moved += 1
        elif ex == "#url: ws://127.0.0.1:7125/websocket":
            assert cp == "url: ws://127.0.0.1:7126/websocket"
            moved += 1
        else:
            assert cp == ex
    assert moved >= 3  # at least the socket, the statistics and the log
    assert f"unix_socket: {data2}/comms/moonraker.sock" in copied

    # The other instance is untouched.
    assert {k: v for k, v in host.snapshot().items() if "printer_data" in k} == before_1
    assert not (data1 / "moonraker.asvc").exists()


def test_several_instances_without_choice_fail(host: Host) -> None:
    host.add_moonraker()
    host.add_moonraker("2")
    before = host.snapshot()
    proc = host.install(expect_rc=1)
    assert "several Moonraker instances" in proc.stderr
    assert str(host.data()) in proc.stderr and str(host.data("2")) in proc.stderr
    assert "--instance 2" in proc.stderr
    assert host.snapshot() == before
    assert host.calls() == []


def test_questions_on_a_terminal(host: Host) -> None:
    """Several instances and no flag on a terminal: a menu; then consent for printer.cfg."""
    host.add_moonraker()
    data2 = host.add_moonraker("2")
    rc, out = host.run_on_tty(answers="2\ny\n")
    assert rc == 0, out
    assert "which one? [1-2]" in out and "--instance 2" in out
    assert (host.unit_dir / "failwatch-2.service").exists()
    assert (data2 / "config/printer.cfg").read_text().count(MACROS_INCLUDE) == 1
    assert (host.data() / "config/printer.cfg").read_text() == PRINTER_CFG

    rc, out = host.run_on_tty("--instance", "2", "--uninstall", answers="")
    assert rc == 0, out
    rc, out = host.run_on_tty("--instance", "2", answers="n\n")  # no consent this time
    assert rc == 0, out
    assert (data2 / "config/printer.cfg").read_text() == PRINTER_CFG
    rc, out = host.run_on_tty(answers="7\n")
    assert rc == 1 and "no instance chosen" in out


def test_unknown_instance_fails(host: Host) -> None:
    host.add_moonraker()
    host.add_moonraker("2")
    proc = host.install("--instance", "3", expect_rc=1)
    assert "no Moonraker instance '3'" in proc.stderr
    assert str(host.data("2")) in proc.stderr
    assert host.calls() == []


def test_data_flag_names_the_service(host: Host) -> None:
    host.add_moonraker()
    data2 = host.add_moonraker("2")
    host.install("--data", str(data2))
    assert (host.unit_dir / "failwatch-2.service").exists()
    assert (data2 / "systemd/failwatch-2.env").exists()


def test_unit_of_another_data_folder_is_not_taken_over(host: Host) -> None:
    host.add_moonraker()
    host.install()
    other = host.tmp / "custom"
    (other / "config").mkdir(parents=True)
    proc = host.install("--data", str(other), expect_rc=1)
    assert "already serves another data folder" in proc.stderr
    assert "--instance" in proc.stderr
    host.install("--data", str(other), "--instance", "x")
    assert (other / "systemd/failwatch-x.env").exists()
    assert host.calls()[-1] == "restart failwatch-x.service"


def test_shared_venv_is_removed_with_the_last_instance(host: Host) -> None:
    host.add_moonraker()
    host.add_moonraker("2")
    host.install("--data", str(host.data()))
    host.install("--instance", "2")
    assert (host.unit_dir / "failwatch.service").exists()
    assert (host.unit_dir / "failwatch-2.service").exists()
    out = host.install("--uninstall", "--instance", "2").stdout
    assert host.venv.exists() and "still used by failwatch" in out
    host.install("--uninstall", "--data", str(host.data()))
    assert not host.venv.exists()


# ------------------------------------------------------------------ dry run, uninstall


def test_dry_run_changes_nothing(host: Host) -> None:
    host.add_moonraker()
    before = host.snapshot()
    out = host.install("--dry-run", "--yes").stdout
    assert host.snapshot() == before
    assert host.calls() == []
    assert "would write" in out and "failwatch.service" in out
    assert "would run:" in out and "enable failwatch.service" in out
    assert "would change" in out and MACROS_INCLUDE in out


def test_dry_run_uninstall_changes_nothing(host: Host) -> None:
    host.add_moonraker()
    host.install("--yes")
    host.clear_calls()
    before = host.snapshot()
    out = host.install("--uninstall", "--dry-run").stdout
    assert host.snapshot() == before
    assert host.calls() == []
    assert "would run:" in out and "stop failwatch.service" in out


def test_uninstall_removes_what_it_added(host: Host) -> None:
    data = host.add_moonraker()
    (data / "moonraker.asvc").write_text("crowsnest\n")
    host.install("--yes")
    state = data / "failwatch/state.json"
    state.parent.mkdir()
    state.write_text('{"prints": 3}\n')
    cfg = data / "config/failwatch.cfg"
    cfg_text = cfg.read_text()
    host.clear_calls()

    out = host.install("--uninstall").stdout
    assert not (host.unit_dir / "failwatch.service").exists()
    assert not (data / "systemd/failwatch.env").exists()
    assert not (data / "config/failwatch-update.cfg").exists()
    assert not (data / "config/failwatch_macros.cfg").is_symlink()
    assert not (data / "config/failwatch_macros.cfg").exists()
    assert (data / "config/moonraker.conf").read_text() == moonraker_conf(7125)
    assert (data / "config/printer.cfg").read_text() == PRINTER_CFG
    assert (data / "moonraker.asvc").read_text() == "crowsnest\n"
    assert not host.venv.exists()
    # Kept, and said so.
    assert cfg.read_text() == cfg_text
    assert state.read_text() == '{"prints": 3}\n'
    assert "Kept" in out and str(cfg) in out and f"{data}/failwatch/" in out
    assert host.calls() == [
        "stop failwatch.service",
        "disable failwatch.service",
        "daemon-reload",
        "reset-failed failwatch.service",
    ]

    # A second uninstall finds nothing left to do and still succeeds.
    host.clear_calls()
    host.install("--uninstall")
    assert host.calls() == []


# ------------------------------------------------------------------ errors, options


def test_missing_data_folder_is_a_clear_error(host: Host) -> None:
    host.add_moonraker()
    missing = host.home / "nope_data"
    proc = host.install("--data", str(missing), expect_rc=1)
    assert f"{missing} does not exist" in proc.stderr
    assert host.calls() == []
    assert not (host.unit_dir / "failwatch.service").exists()


def test_no_data_folder_found_is_a_clear_error(host: Host) -> None:
    proc = host.install(expect_rc=1)
    assert "found no Moonraker data folder" in proc.stderr and "--data" in proc.stderr


def test_refuses_root_without_allow_root(host: Host) -> None:
    host.add_moonraker()
    if os.geteuid() != 0:
        pytest.skip("only meaningful when the tests run as root")
    proc = host.run(expect_rc=1)
    assert "do not run this as root" in proc.stderr
    assert host.calls() == []
    host.run(env={"FAILWATCH_ALLOW_ROOT": "1"})
    assert (host.unit_dir / "failwatch.service").exists()


def test_help_and_bad_options(host: Host) -> None:
    out = host.run("--help").stdout
    for option in (
        "--instance",
        "--data",
        "--yes",
        "--uninstall",
        "--dry-run",
        "--no-pip",
        "--prefix",
        "--allow-root",
        "SYSTEMCTL",
    ):
        assert option in out
    proc = host.install("--frobnicate", expect_rc=2)
    assert "unknown option: --frobnicate" in proc.stderr
    proc = host.install("--data", expect_rc=2)
    assert "--data needs a value" in proc.stderr
    proc = host.install("--instance", "a b", expect_rc=2)
    assert "--instance" in proc.stderr


def test_failed_systemctl_is_reported(host: Host) -> None:
    host.add_moonraker()
    failing = host.tmp / "failing-systemctl"
    failing.write_text("#!/bin/sh\necho 'Failed to connect to bus' >&2\nexit 1\n")
    failing.chmod(0o755)
    proc = host.install(env={"SYSTEMCTL": str(failing)}, expect_rc=1)
    assert "Failed to connect to bus" in proc.stderr
    assert "daemon-reload" in proc.stderr  # which command failed
