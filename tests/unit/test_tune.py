"""tune: the vectorised search equals the daemon's code frame by frame, and finds good settings."""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageStat

from failwatch_moonraker.cli import main
from failwatch_moonraker.tools.recording import Recording, write_recording
from failwatch_moonraker.tools.replay import make_settings
from failwatch_moonraker.tools.tune import (
    TuneError,
    expand_grid,
    first_pause_plain,
    first_pauses,
    first_pauses_by_camera,
    first_pauses_plain,
    load_grid,
    load_labels,
    make_batch,
)
from sim.recordings import failure_time, synthetic_cameras, synthetic_print


def run_cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


def varied_prints() -> list[Recording]:
    """Different lengths, a resume, a recording that began mid-print, a brand-new printer."""
    prints = [
        synthetic_print(1, 150, failure_frame=80, level=1.0),
        synthetic_print(2, 120, bursts=3, burst_level=0.8),
        synthetic_print(3, 90, failure_frame=40, level=0.7),
        synthetic_print(4, 150, failure_frame=100, level=1.6, lifetime=0, long_mean=0.0),
    ]
    resumed = synthetic_print(5, 140, failure_frame=60, level=1.4)
    resumed.frames[75].resumed_at = resumed.frames[75].t - 2.0
    prints.append(resumed)
    mid = synthetic_print(6, 130, failure_frame=50, level=1.1)
    mid.stats.update(prediction_num=40, ewm_mean=0.05, rolling_mean_short=0.04, p=0.03)
    prints.append(mid)
    return prints


# Two values of every option tune searches: 1,024 settings.
EVERY_KEY = {
    "sensitivity": [0.8, 1.6],
    "ewm_span": [4, 12],
    "short_window": [5, 310],
    "long_window": [50, 7200],
    "threshold_low": [0.2, 0.38],
    "threshold_high": [0.5, 0.78],
    "short_multiple": [2.0, 3.8],
    "escalating_factor": [1.0, 1.75],
    "safe_frames": [0, 30],
    "resume_cooldown": [0, 600],
}


def test_vectorised_equals_the_plain_loop_exactly() -> None:
    grid = EVERY_KEY
    sets, skipped = expand_grid(grid, make_settings({}, {}))
    assert len(sets) == 1024 and skipped == 0
    sets = sets[::2]  # half of them keeps the plain loop quick; every key still varies
    prints = varied_prints()
    fast = first_pauses(make_batch(prints), sets)
    slow = first_pauses_plain(prints, sets)
    assert fast.shape == (len(sets), len(prints))
    np.testing.assert_array_equal(fast, slow)
    # a meaningful comparison: pauses and non-pauses, at many different frames
    assert (fast == -1).any() and (fast >= 0).any() and len(np.unique(fast)) > 20


def two_camera_prints() -> list[Recording]:
    """Two cameras each, their own baselines: a failure one camera sees, then the other;
    a resume on the other camera's frame; one camera's figures from mid-print; and a
    single-camera print among them."""
    quiet = {"bursts": 3, "burst_level": 0.8}
    prints = [
        synthetic_cameras(40, 150, {"front": quiet, "side": {"failure_frame": 80,
                                                             "level": 1.0}}),
        synthetic_cameras(41, 120, {"front": {"failure_frame": 50, "level": 0.7},
                                    "side": {"failure_frame": 90, "level": 1.5,
                                             "long_mean": 0.01, "lifetime": 40}}),
        synthetic_cameras(42, 130, {"front": quiet, "side": quiet}),
        synthetic_cameras(43, 110, {"top": {"lifetime": 0, "long_mean": 0.0},
                                    "front": quiet, "side": {"failure_frame": 60,
                                                             "level": 1.2}}),
        synthetic_print(44, 100, failure_frame=70, level=1.1),
    ]
    resumed = prints[0]
    side = [i for i, f in enumerate(resumed.frames) if f.camera == "side"]
    at = side[85] - 1  # front's frame just before side's 86th: the resume is the printer's
    assert resumed.frames[at].camera == "front"
    resumed.frames[at].resumed_at = resumed.frames[at].t - 2.0
    prints[1].cameras["front"].update(prediction_num=40, ewm_mean=0.05, rolling_mean_short=0.04)
    return prints


def test_vectorised_equals_the_plain_loop_with_two_cameras() -> None:
    grid = EVERY_KEY
    sets, _ = expand_grid(grid, make_settings({}, {}))
    sets = sets[::4]
    prints = two_camera_prints()
    batch = make_batch(prints)
    assert batch.cameras == ["front", "side", "front", "side", "front", "side", "top", "front",
                             "side", ""]
    fast = first_pauses(batch, sets)
    np.testing.assert_array_equal(fast, first_pauses_plain(prints, sets))
    assert (fast == -1).any() and (fast >= 0).any() and len(np.unique(fast)) > 20
    # per camera too: each camera alone, as replay --camera runs it
    rows = first_pauses_by_camera(batch, sets)
    alone = np.array([[first_pause_plain(prints[int(batch.print_of[r])], s, batch.cameras[r])
                       for r in range(len(batch.cameras))] for s in sets])
    np.testing.assert_array_equal(rows, alone)
    # the printer pauses at the first frame any camera fails on, and it was that camera's
    for s, row in enumerate(fast):
        for i, index in enumerate(row):
            own = [int(rows[s, r]) for r in batch.rows_of(i) if rows[s, r] >= 0]
            assert index == (min(own) if own else -1)


def test_one_camera_alone_equals_the_plain_loop_of_that_camera() -> None:
    sets, _ = expand_grid(EVERY_KEY, make_settings({}, {}))
    sets = sets[::4]
    prints = two_camera_prints()[:4]  # every one has a camera "front"
    for camera in ("front", "side"):
        batch = make_batch(prints, camera)
        assert batch.cameras == [camera] * 4
        fast = first_pauses(batch, sets)
        np.testing.assert_array_equal(fast, first_pauses_plain(prints, sets, camera))
        assert (fast == -1).any() and (fast >= 0).any()
        paused = [(i, int(index)) for row in fast for i, index in enumerate(row) if index >= 0]
        assert all(prints[i].frames[index].camera == camera for i, index in paused)


def test_vectorised_equals_the_plain_loop_on_the_default_grid() -> None:
    prints = [synthetic_print(20 + i, 200, failure_frame=120 if i % 2 else None, level=0.8,
                              bursts=3, burst_level=0.9) for i in range(4)]
    sets, _ = expand_grid(load_grid(None), make_settings({}, {}))
    chosen = sets[::5]
    np.testing.assert_array_equal(first_pauses(make_batch(prints), chosen),
                                  first_pauses_plain(prints, chosen))


def write_labels(folder: Path, prints: Sequence[tuple[str, Recording, float | None]]) -> Path:
    """Each (name, recording, when its failure began or None for good) as a recording
    file, and the labels YAML naming them."""
    lines = []
    for name, rec, began in prints:
        write_recording(folder / name, rec)
        lines.append(f"{name}: {'good' if began is None else began}")
    labels = folder / "labels.yaml"
    labels.write_text("\n".join(lines) + "\n")
    return labels


def labelled_set(folder: Path) -> Path:
    """Good prints with bursts the defaults pause on; failures of different strengths."""
    prints = []
    for i in range(10):
        failing = i % 3 == 0
        rec = synthetic_print(200 + i, 500, failure_frame=300 if failing else None,
                              level=1.2 + 0.1 * i, bursts=3, burst_level=1.4)
        prints.append((f"p{i}.jsonl", rec, failure_time(rec, 300) if failing else None))
    return write_labels(folder, prints)


def test_tune_finds_settings_that_separate_the_prints(tmp_path: Path) -> None:
    labels = labelled_set(tmp_path)
    code, out, err = run_cli("tune", str(labels), "--max-delay", "300", "--top", "3")
    assert code == 0, err
    rows = [line.split() for line in out.splitlines() if line.strip().startswith(("1 ", "now "))]
    best, now = rows[0], rows[1]
    assert best[1:6] == ["0", "of", "10", "4", "of"]  # no false pause, all 4 failures caught
    assert now[1] != "0"  # the defaults pause some good print here
    assert "[detection]\nsensitivity: " in out and "ewm_span: " in out
    assert "p0.jsonl: failure began 3010 s, paused at" in out


def test_tune_plots_the_chosen_settings(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    labels = labelled_set(tmp_path)
    grid = tmp_path / "grid.yaml"
    grid.write_text("sensitivity: [0.5, 1.0]\nthreshold_low: 0.38\nthreshold_high: [0.78]\n"
                    "short_multiple: 3.8\nescalating_factor: [1.75, 2.5]\newm_span: 12\n")
    code, out, err = run_cli("tune", str(labels), "--grid", str(grid),
                             "--plot", str(tmp_path / "plots"))
    assert code == 0, err
    assert "4 settings" in out
    pngs = sorted((tmp_path / "plots").glob("*.png"))
    assert len(pngs) == 10
    with Image.open(pngs[0]) as image:
        assert image.size == (1200, 675)
        assert ImageStat.Stat(image.convert("L")).stddev[0] > 10


def test_labels_take_good_seconds_or_an_iso_time(tmp_path: Path) -> None:
    rec = synthetic_print(30, 50)
    write_recording(tmp_path / "a.jsonl", rec)
    write_recording(tmp_path / "b.jsonl", rec)
    write_recording(tmp_path / "c.jsonl", rec)
    iso = dt.datetime.fromtimestamp(rec.start_time + 120).isoformat()
    (tmp_path / "l.yaml").write_text(f"a.jsonl: good\nb.jsonl: 250\nc.jsonl: '{iso}'\n")
    labels = load_labels(tmp_path / "l.yaml")
    assert [lab.failure_at for lab in labels] == [None, 250.0, pytest.approx(120.0)]
    (tmp_path / "bad.yaml").write_text("a.jsonl: failed\n")
    with pytest.raises(TuneError, match="a.jsonl: expected 'good', the seconds"):
        load_labels(tmp_path / "bad.yaml")
    (tmp_path / "missing.yaml").write_text("nope.jsonl: good\n")
    with pytest.raises(TuneError, match="nope.jsonl: no such file"):
        load_labels(tmp_path / "missing.yaml")


def test_grid_files_are_checked(tmp_path: Path) -> None:
    grid = tmp_path / "g.yaml"
    grid.write_text("sensitivity: [1.0, 1.5]\nsafe_frames: 10\n")
    loaded = load_grid(grid)
    assert loaded["sensitivity"] == [1.0, 1.5] and loaded["safe_frames"] == [10]
    assert loaded["ewm_span"] == [8, 12, 16]  # the default grid for the rest
    grid.write_text("sensitivty: [1]\n")
    with pytest.raises(TuneError, match="unknown setting 'sensitivty'; allowed: sensitivity"):
        load_grid(grid)
    grid.write_text("warning_cooldown: [1]\n")
    with pytest.raises(TuneError, match="warning_cooldown never changes"):
        load_grid(grid)
    with pytest.raises(TuneError, match="sensitivity: must be a number <= 5"):
        expand_grid({"sensitivity": [1.0, 8]}, make_settings({}, {}))
    sets, skipped = expand_grid({"threshold_low": [0.3, 0.9], "threshold_high": [0.5, 1.0]},
                                make_settings({}, {}))
    assert len(sets) == 3 and skipped == 1


def test_tune_with_two_cameras_counts_a_failure_only_one_camera_sees(tmp_path: Path) -> None:
    labels = two_camera_labels(tmp_path)
    code, out, err = run_cli("tune", str(labels), "--top", "3")
    assert code == 0, err
    assert "tune: 6 labelled prints (3 good, 3 failed), 4,800 frames" in out
    assert "6 of the prints were watched by several cameras: each camera keeps its own " \
        "statistics, and a print pauses when any camera fails" in out
    best = next(line.split() for line in out.splitlines() if line.strip().startswith("1 "))
    assert best[1:7] == ["0", "of", "6", "3", "of", "3"]
    caught = re.search(r"t0.jsonl: failure began 3011 s, paused at (\d+) s, \d+ s later "
                       r"\(camera side\)\n    each camera alone would pause: front never; "
                       r"side at (\d+) s\n", out)
    assert caught is not None and caught[1] == caught[2]
    assert "  t1.jsonl: good print, never paused\n    each camera alone would pause: front " \
        "never; side never\n" in out


def two_camera_labels(tmp_path: Path) -> Path:
    """Six prints, two cameras each; the failed ones (0, 2, 4) seen by "side" alone."""
    prints = []
    for i in range(6):
        failing = i % 2 == 0
        quiet = {"bursts": 3, "burst_level": 1.4, "long_mean": 0.03 + 0.01 * i}
        side = {"failure_frame": 300, "level": 1.2 + 0.1 * i} if failing else quiet
        rec = synthetic_cameras(300 + i, 400, {"front": quiet, "side": side},
                                name=f"two-{i}")
        began = rec.frames_of("side")[300].t - rec.start_time
        prints.append((f"t{i}.jsonl", rec, began if failing else None))
    return write_labels(tmp_path, prints)


def test_tune_on_one_camera_alone(tmp_path: Path) -> None:
    labels = two_camera_labels(tmp_path)
    code, out, err = run_cli("tune", str(labels), "--top", "3", "--camera", "side")
    assert code == 0, err
    assert "tune: 6 labelled prints (3 good, 3 failed), 2,400 frames" in out
    assert "camera side alone: the other cameras' frames are left out" in out
    assert "each camera alone would pause" not in out
    best = next(line.split() for line in out.splitlines() if line.strip().startswith("1 "))
    assert best[1:7] == ["0", "of", "6", "3", "of", "3"]
    assert re.search(r"  t0.jsonl: failure began 3011 s, paused at \d+ s, \d+ s later\n", out)
    # front never sees the failures: tuned on it alone, none is caught
    code, out, err = run_cli("tune", str(labels), "--top", "3", "--camera", "front")
    assert code == 0, err
    best = next(line.split() for line in out.splitlines() if line.strip().startswith("1 "))
    assert best[1:7] == ["0", "of", "6", "0", "of", "3"]
    assert "  t0.jsonl: failure began 3011 s, NOT paused\n" in out


def test_tune_camera_that_a_recording_lacks_is_refused(tmp_path: Path) -> None:
    labels = two_camera_labels(tmp_path)
    code, out, err = run_cli("tune", str(labels), "--camera", "back")
    assert code == 2 and out == ""
    assert err == (f"failwatch-moonraker tune: --camera back: no such camera in "
                   f"{tmp_path / 't0.jsonl'}; its cameras: front, side\n")
