"""Command line: run the daemon, or check the set-up once."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Sequence

from failwatch_moonraker import __version__
from failwatch_moonraker.config import DEFAULT_CONFIG_PATH, Config, ConfigError, load_config

log = logging.getLogger("failwatch")


def build_parser() -> argparse.ArgumentParser:
    # No default here: a subcommand's default would overwrite a -c given before it
    # ("-c PATH run" and "run -c PATH" must both work); main() fills the default in.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "-c", "--config", default=argparse.SUPPRESS, metavar="PATH",
        help=f"configuration file (default: {DEFAULT_CONFIG_PATH})")
    parser = argparse.ArgumentParser(
        prog="failwatch-moonraker", parents=[common],
        description="Watches Klipper prints through Moonraker and the webcam, and pauses a "
                    "print when the failure detector confirms a failure.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.add_parser("run", parents=[common], help="run the daemon (the default)")
    sub.add_parser("check", parents=[common],
                   help="validate the config, reach Moonraker, the camera and the predictor "
                        "once, and print a report")
    offline = sub.add_parser(
        "offline", parents=[common],
        help="tell the FAILWATCH_* macros that failwatch is not running (the systemd unit "
             "runs this after the daemon ended, however it ended)")
    offline.add_argument("--guard", type=int, metavar="PID", help=argparse.SUPPRESS)
    from failwatch_moonraker.tools.cli import add_commands  # replay, tune

    add_commands(sub)
    from failwatch_moonraker.tools.detect import add_command as add_detect

    add_detect(sub)
    from failwatch_moonraker.tools.model import add_commands as add_model_commands

    add_model_commands(sub)  # model fetch
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    given = getattr(args, "config", None)
    if args.command in ("replay", "tune"):  # offline tools: no failwatch.cfg needed
        from failwatch_moonraker.tools.cli import run as run_tool

        if getattr(args, "base_config", None) is None and given is not None:
            args.base_config = given
        return run_tool(args)
    if args.command == "detect":  # no Moonraker needed; failwatch.cfg is optional
        from failwatch_moonraker.tools.detect import run as run_detect

        return run_detect(args)
    if args.command == "model":  # no failwatch.cfg needed either
        from failwatch_moonraker.tools.model import run as run_model

        return run_model(args)
    path = given if given is not None else DEFAULT_CONFIG_PATH
    try:
        config = load_config(path)
    except ConfigError as exc:
        print(f"failwatch-moonraker: configuration error:\n{exc}", file=sys.stderr)
        return 2
    if args.command in ("check", "offline"):  # errors only, on stderr, secrets scrubbed
        from failwatch_moonraker.logs import setup_logging
        from failwatch_moonraker.secrets import register, secret_values

        register(secret_values(config))
        setup_logging("", "ERROR", config.secrets())
    if args.command == "check":
        from failwatch_moonraker.checkup import run_check

        return asyncio.run(run_check(config, sys.stdout))
    if args.command == "offline":
        from failwatch_moonraker import offline

        if args.guard is not None:
            return offline.guard(config, args.guard, sys.stdout)
        return asyncio.run(offline.mark_offline(config, sys.stdout))
    return run_daemon(config, path)


def run_daemon(config: Config, path: str = "") -> int:
    from failwatch_moonraker.logs import setup_logging
    from failwatch_moonraker.secrets import register, secret_values

    register(secret_values(config))
    try:
        setup_logging(config.logging.path, config.logging.level, config.secrets(),
                      config.logging.max_size, config.logging.backups)
    except OSError as exc:
        print(f"failwatch-moonraker: cannot open the log file {config.logging.path}: {exc}",
              file=sys.stderr)
        return 2
    from failwatch_moonraker.offline import say_goodbye, start_guardian
    from failwatch_moonraker.placeholders import placeholder_problems

    for problem in placeholder_problems(config):
        log.error("config: %s", problem)
    # Outside systemd nothing else notices a SIGKILL: a guardian tells the macros.
    guardian = start_guardian(path or config.path)
    code = asyncio.run(_serve(config))
    say_goodbye(guardian)
    return code


async def _serve(config: Config) -> int:
    from failwatch_moonraker.daemon import Daemon
    from failwatch_moonraker.farm import Farm

    daemon: Daemon | Farm = Farm(config) if config.printers else Daemon(config)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, daemon.stop)
    await daemon.run()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
