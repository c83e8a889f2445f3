"""The ``replay`` and ``tune`` subcommands: their arguments, and running them.

Kept apart from :mod:`failwatch_moonraker.cli` so that the daemon's command line
stays small; the modules doing the work (and numpy, PyYAML, matplotlib) are
imported only when one of these commands runs.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any, TextIO

COMMANDS = ("replay", "tune")


def add_commands(sub: Any) -> None:
    """Add ``replay`` and ``tune`` to the CLI's subparsers."""
    replay = sub.add_parser(
        "replay", help="run a recording through the decision rule with other settings",
        description="Run a recorded print (a [record] .jsonl file, or a CSV of time,p) "
                    "through the same statistics and decision code as the daemon, with the "
                    "recorded settings unless --config/--set say otherwise. Prints when "
                    "the levels change, the first warning and the first failure; with "
                    "several cameras, each camera's own and the printer's (the worst "
                    "camera's).")
    replay.add_argument("recording", metavar="RECORDING",
                        help="a recording (<print id>.jsonl) or a CSV file of time,p")
    replay.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="change one [detection] setting, e.g. --set sensitivity=1.2 "
                             "(repeatable)")
    replay.add_argument("-c", "--config", dest="base_config", metavar="PATH",
                        help="start from this failwatch.cfg's [detection] settings instead "
                             "of the recorded ones")
    replay.add_argument("--camera", metavar="NAME",
                        help="replay this camera's frames alone, as if it were the printer's "
                             "only camera (recordings of several cameras)")
    replay.add_argument("--plot", metavar="OUT.png",
                        help="draw the scores, means, thresholds and decisions to a PNG "
                             "(needs matplotlib)")

    tune = sub.add_parser(
        "tune", help="grid-search the [detection] settings on labelled recordings",
        description="Search settings that pause none of the good prints and as many of the "
                    "failed ones as possible, as early as possible. LABELS is a YAML file of "
                    "'recording: good' or 'recording: <when the failure began: seconds "
                    "since the print started, or an ISO time>' lines.")
    tune.add_argument("labels", metavar="LABELS", help="the labels YAML file")
    tune.add_argument("--grid", metavar="FILE",
                      help="YAML of 'setting: [values]' replacing the default grid's values "
                           "for those settings (a single value holds one fixed)")
    tune.add_argument("--max-delay", type=float, default=300.0, metavar="SECONDS",
                      help="a failure counts as caught when paused at most this long after it "
                           "began (default: 300)")
    tune.add_argument("-c", "--config", dest="base_config", metavar="PATH",
                      help="your failwatch.cfg: its [detection] settings fill in what is not "
                           "searched, and are compared with the best")
    tune.add_argument("--top", type=int, default=10, metavar="N",
                      help="how many of the best settings to list (default: 10)")
    tune.add_argument("--camera", metavar="NAME",
                      help="tune on this camera's frames alone, as if it were each printer's "
                           "only camera (every labelled recording must have it)")
    tune.add_argument("--plot", metavar="DIR",
                      help="draw the chosen settings over each labelled print, one PNG each")


def run(args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """Run ``replay`` or ``tune``; 0 on success, 2 on a problem with the inputs."""
    out = out or sys.stdout  # looked up now, so that redirections apply
    err = err or sys.stderr
    from failwatch_moonraker.config import ConfigError
    from failwatch_moonraker.tools.plot import PlotUnavailable
    from failwatch_moonraker.tools.recording import RecordingError
    from failwatch_moonraker.tools.replay import CameraError, SettingsError

    problems: tuple[type[Exception], ...] = (ConfigError, RecordingError, SettingsError,
                                             CameraError, PlotUnavailable)
    try:
        if args.command == "replay":
            return _replay(args, out)
        try:
            from failwatch_moonraker.tools.tune import TuneError
        except ImportError as exc:
            print(f"failwatch-moonraker tune: needs numpy and PyYAML ({exc}): pip install "
                  "'failwatch-moonraker[tune]'", file=err)
            return 2
        try:
            return _tune(args, out)
        except TuneError as exc:
            print(f"failwatch-moonraker tune: {exc}", file=err)
            return 2
    except problems as exc:
        print(f"failwatch-moonraker {args.command}: {exc}", file=err)
        return 2


def _base_settings(path: str | None) -> dict[str, Any] | None:
    if not path:
        return None
    from failwatch_moonraker.config import load_config
    from failwatch_moonraker.tools.replay import settings_dict

    return dict(settings_dict(load_config(path).detection))


def _replay(args: argparse.Namespace, out: TextIO) -> int:
    from failwatch_moonraker.tools.recording import read_recording
    from failwatch_moonraker.tools.replay import make_settings, parse_sets, print_report, replay

    rec = read_recording(args.recording)
    if not rec.frames:
        print(f"{args.recording}: the recording has no frames yet", file=out)
        return 0
    overrides = parse_sets(args.set)
    base = _base_settings(args.base_config)
    if base is not None:
        origin = f"[detection] of {args.base_config}"
    elif rec.params:
        base, origin = rec.params, "as recorded"
    else:
        base, origin = {}, "defaults"
    if overrides:
        origin += "; --set " + " ".join(f"{k}={v}" for k, v in overrides.items())
    settings = make_settings(base, overrides)
    result = replay(rec, settings, follow=origin == "as recorded", camera=args.camera)
    print_report(result, out, origin)
    if args.plot:
        from failwatch_moonraker.tools.plot import plot_replay

        plot_replay(result, args.plot)
        print(f"\nplot: {args.plot}", file=out)
    return 0


def _tune(args: argparse.Namespace, out: TextIO) -> int:
    from failwatch_moonraker.tools import tune as t
    from failwatch_moonraker.tools.replay import make_settings

    if args.max_delay <= 0:
        raise t.TuneError("--max-delay must be a number of seconds > 0")
    labels = t.load_labels(args.labels)
    grid = t.load_grid(args.grid)
    base = make_settings(_base_settings(args.base_config) or {}, {})
    sets, skipped = t.expand_grid(grid, base)
    if not sets:
        raise t.TuneError("no valid combination in the grid (threshold_high < threshold_low)")
    keys = list(grid)
    recs = [lab.recording for lab in labels]
    batch = t.make_batch(recs, args.camera)
    started = time.perf_counter()
    pauses = t.first_pauses(batch, sets)
    elapsed = time.perf_counter() - started
    scores = t.score(labels, sets, pauses, args.max_delay, base, keys)
    baseline = t.score(labels, [base], t.first_pauses(batch, [base]), args.max_delay, base,
                       keys)[0]
    ranked = t.rank(scores)
    goods = sum(1 for lab in labels if lab.failure_at is None)
    frames = int(batch.valid.sum())
    header = (f"tune: {len(labels)} labelled prints ({goods} good, {len(labels) - goods} "
              f"failed), {frames:,} frames; {len(sets):,} settings"
              + (f" ({skipped} skipped: threshold_high < threshold_low)" if skipped else "")
              + f"; {len(sets) * frames / 1e6:.1f} M frame decisions in {elapsed:.2f} s")
    several = sum(len(r.camera_names()) > 1 for r in recs)
    if args.camera is not None:
        header += f"\ncamera {args.camera} alone: the other cameras' frames are left out"
    elif several:
        header += (f"\n{several} of the prints were watched by several cameras: each camera "
                   "keeps its own statistics, and a print pauses when any camera fails")
    if goods == 0 or goods == len(labels):
        header += ("\nnote: label both good and failed prints; with only one kind the search "
                   "can only " + ("avoid pauses" if goods else "pause early"))
    t.print_report(labels, ranked, baseline, keys, args.max_delay, out, top=max(1, args.top),
                   header=header, camera=args.camera,
                   cameras=t.camera_pauses(batch, ranked[0].settings))
    if args.plot:
        from failwatch_moonraker.tools.plot import plot_replay
        from failwatch_moonraker.tools.replay import describe_settings, replay

        folder = Path(args.plot)
        folder.mkdir(parents=True, exist_ok=True)
        best = ranked[0].settings
        for lab in labels:
            target = folder / (lab.recording.path.stem + ".png")
            plot_replay(replay(lab.recording, best, camera=args.camera), target,
                        failure_at=lab.failure_at,
                        subtitle="tuned: " + describe_settings(best, keys))
        print(f"\nplots: {len(labels)} PNG files in {folder}", file=out)
    return 0
