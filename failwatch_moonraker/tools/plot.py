"""The replay plot: what the rule saw and decided, frame by frame, in one picture.

With several cameras, one panel per camera (its own scores, means and
thresholds), one strip per camera of its own verdict, and the printer's
level (the worst camera's) at the bottom.

matplotlib is an optional extra (``pip install 'failwatch-moonraker[plot]'``) and
is imported only inside :func:`plot_replay`: the daemon never loads it.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from failwatch_moonraker.core.policy import Level

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from failwatch_moonraker.config import DetectionConfig
    from failwatch_moonraker.tools.replay import ReplayFrame, ReplayResult

WIDTH_IN, HEIGHT_IN, DPI = 12.0, 6.75, 100  # 1200 x 675 px
PANEL_IN = 3.2  # each further camera's panel and strip (320 px)

COLORS = {
    "p": "#9e9e9e",
    "ewm": "#1f5fbf",
    "short": "#e08a00",
    "long": "#2e8b57",
    "warn": "#e6b800",
    "fail": "#d62728",
    "ok": "#d9efd9",
    "warning": "#ffe28a",
    "failure": "#f4a3a3",
}


class PlotUnavailable(Exception):
    """matplotlib is not installed."""


def plot_replay(result: ReplayResult, out: str | os.PathLike[str], *,
                failure_at: float | None = None, subtitle: str = "") -> None:
    """Draw ``result`` to the PNG ``out``; ``failure_at``: a labelled failure start (s)."""
    figure(result, failure_at=failure_at, subtitle=subtitle).savefig(os.fspath(out), dpi=DPI)


def figure(result: ReplayResult, *, failure_at: float | None = None,
           subtitle: str = "") -> Figure:
    """The plot: one panel (and one level strip) per camera, then the printer's level."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        from matplotlib.lines import Line2D
    except ImportError:
        raise PlotUnavailable("plots need matplotlib: pip install "
                              "'failwatch-moonraker[plot]' (or pip install matplotlib)") from None

    frames = result.frames
    settings = result.settings
    cameras = result.cameras if result.several else []
    count = max(1, len(cameras))
    height = HEIGHT_IN + PANEL_IN * (count - 1)
    fig = Figure(figsize=(WIDTH_IN, height), dpi=DPI)
    FigureCanvasAgg(fig)
    if not cameras:
        grid = fig.add_gridspec(2, 1, height_ratios=[6, 0.55], hspace=0.08,
                                left=0.065, right=0.985, top=0.80, bottom=0.1)
        ax = fig.add_subplot(grid[0])
        strip = fig.add_subplot(grid[1], sharex=ax)
        _panel(ax, frames, settings, failure_at)
        _legend(ax, [ax], frames, settings)
    else:
        # The same margins in inches as one camera's plot; the panels share the time axis.
        grid = fig.add_gridspec(2 * count + 1, 1,
                                height_ratios=[6] * count + [0.4] * count + [0.55],
                                hspace=0.12, left=0.065, right=0.985,
                                top=1 - 1.35 / height, bottom=0.675 / height)
        ax = fig.add_subplot(grid[0])
        axes = [ax] + [fig.add_subplot(grid[i], sharex=ax) for i in range(1, count)]
        for i, (camera, panel) in enumerate(zip(cameras, axes, strict=True)):
            own = result.of(camera)
            _panel(panel, own, settings, failure_at)
            panel.text(0.006, 0.965, f"camera {camera}: {len(own)} frames, its own statistics",
                       transform=panel.transAxes, ha="left", va="top", fontsize=10,
                       fontweight="bold", zorder=9,
                       bbox={"boxstyle": "round,pad=0.25", "fc": "white", "ec": "#999999",
                             "alpha": 0.9})
            panel.set_ylabel("failure score")
            band = fig.add_subplot(grid[count + i], sharex=ax)
            for start, end, level in _runs(own, own_verdict=True):
                band.axvspan(start, end, color=COLORS[str(level)], lw=0)
            band.set_yticks([])
            band.set_ylabel(camera, rotation=0, ha="right", va="center", fontsize=9)
            band.tick_params(labelbottom=False)
        strip = fig.add_subplot(grid[2 * count], sharex=ax)
        _legend(ax, axes, frames, settings)
    if frames:
        t = [f.t for f in frames]
        pad = max(1.0, (t[-1] - t[0]) * 0.01)
        ax.set_xlim(min(t) - pad, max(t) + pad)

    # The level strip: ok / warning / failure, one span per run of equal levels.
    for start, end, level in _runs(frames):
        strip.axvspan(start, end, color=COLORS[str(level)], lw=0)
    strip.set_yticks([])
    strip.set_ylabel("printer" if cameras else "level", rotation=0, ha="right", va="center",
                     fontsize=9)
    strip.set_xlabel("seconds since print start (s)")
    strip.grid(False)

    rec = result.recording
    top_in = 0.16875 if cameras else None  # the title's distance from the top, in inches
    fig.suptitle(f"failwatch replay: {rec.title()}", fontsize=13, fontweight="bold",
                 x=0.065, ha="left", y=0.975 if top_in is None else 1 - top_in / height)
    first_warning = result.first(Level.WARNING)
    first_pause = result.first_fire(Level.FAILURE)
    by = (lambda f: f" ({f.camera})") if cameras else (lambda f: "")
    outcome = (f"first warning {first_warning.t:.0f} s{by(first_warning)}" if first_warning
               else "no warning") + ", " + \
        (f"pause at {first_pause.t:.0f} s{by(first_pause)}" if first_pause else "no pause")
    line2 = subtitle or (f"sensitivity {settings.sensitivity:g}, thresholds "
                         f"{settings.threshold_low:g}-{settings.threshold_high:g}, short multiple "
                         f"{settings.short_multiple:g}, escalating factor "
                         f"{settings.escalating_factor:g}")
    fig.text(0.065, 0.925 if top_in is None else 1 - 0.50625 / height, f"{outcome}.   {line2}",
             fontsize=9.5, color="#333333", ha="left")
    legend_levels = [Line2D([0], [0], color=COLORS[n], lw=6, label=n)
                     for n in ("ok", "warning", "failure")]
    fig.legend(handles=legend_levels, loc="lower right", ncol=3, fontsize=8, frameon=False,
               bbox_to_anchor=(0.985, 0.0), title=None)
    return fig


def _legend(ax: Axes, axes: list[Axes], frames: list[ReplayFrame],
            settings: DetectionConfig) -> None:
    """One legend above ``ax`` for what every panel shows."""
    from matplotlib.patches import Patch

    unique: dict[str, Any] = {}
    for panel in axes:
        handles, labels = panel.get_legend_handles_labels()
        for label, handle in zip(labels, handles, strict=True):
            unique.setdefault(label, handle)
    if any(f.warm_up for f in frames):
        unique[f"warm-up: no decision ({settings.safe_frames} frames)"] = \
            Patch(color="#ececec")
    ax.legend(unique.values(), unique.keys(), loc="lower left", bbox_to_anchor=(0.0, 1.01),
              fontsize=8.5, ncol=4, frameon=False, borderaxespad=0.0, handlelength=2.6)


def _panel(ax: Axes, frames: list[ReplayFrame], settings: DetectionConfig,
           failure_at: float | None) -> None:
    """One camera's scores, means, thresholds and the actions its frames fired."""
    t = [f.t for f in frames]
    warm = [f.t for f in frames if f.warm_up]
    if warm:
        ax.axvspan(t[0], warm[-1], color="#ececec", zorder=0)
    ax.plot(t, [f.p for f in frames], color=COLORS["p"], lw=0.8, marker=".", ms=2.5,
            alpha=0.8, zorder=2, label="score p (per frame)")
    ax.plot(t, [f.short for f in frames], color=COLORS["short"], lw=1.6, zorder=3,
            label=f"print mean (short, {settings.short_window} frames)")
    ax.plot(t, [f.long for f in frames], color=COLORS["long"], lw=1.6, ls="--", zorder=3,
            label=f"lifetime baseline (long, {settings.long_window} frames)")
    ax.plot(t, [f.warn_at for f in frames], color=COLORS["warn"], lw=1.4, ls=(0, (5, 2)),
            zorder=3, label="warning threshold for the EWM")
    ax.plot(t, [f.fail_at for f in frames], color=COLORS["fail"], lw=1.4, ls=(0, (5, 2)),
            zorder=3, label="failure (pause) threshold for the EWM")
    ax.plot(t, [f.ewm for f in frames], color=COLORS["ewm"], lw=2.2, zorder=4,
            label=f"EWM of p (span {settings.ewm_span})")

    warnings = [f for f in frames if f.fire is Level.WARNING]
    pauses = [f for f in frames if f.fire is Level.FAILURE]
    if warnings:
        ax.scatter([f.t for f in warnings], [f.ewm for f in warnings], marker="^", s=90,
                   color=COLORS["warn"], edgecolor="black", lw=0.8, zorder=6,
                   label="warning actions fire")
    for f in pauses:
        ax.scatter([f.t], [f.ewm], marker="X", s=160, color=COLORS["fail"],
                   edgecolor="black", lw=0.8, zorder=7, label="pause (failure actions)")
        # Up and to the left: before a failure the scores are low, so the label stays clear.
        ax.annotate(f"pause at {f.t:.0f} s", (f.t, f.ewm), xytext=(-18, 28),
                    textcoords="offset points", ha="right", fontsize=9, color=COLORS["fail"],
                    fontweight="bold", zorder=8,
                    bbox={"boxstyle": "round,pad=0.25", "fc": "white", "ec": COLORS["fail"],
                          "alpha": 0.95},
                    arrowprops={"arrowstyle": "-", "color": COLORS["fail"], "lw": 1.0})
    for f in (f for f in frames if f.resumed):
        ax.axvline(f.t, color="#6a3d9a", lw=1.2, ls=":", zorder=5,
                   label="user resumed (resume_cooldown starts)")
    if failure_at is not None:
        ax.axvline(failure_at, color="black", lw=1.3, ls="-.", zorder=5,
                   label="failure began (label)")

    # Show every score unless a spike would squash the lines the decision is made on.
    lines_top = max([0.5, *(v for f in frames for v in (f.ewm, f.fail_at, f.short, f.long))])
    p_top = max((f.p for f in frames), default=0.0)
    top = max(lines_top, min(p_top, 2.0 * lines_top)) * 1.08
    ax.set_ylim(0.0, top)
    if frames:
        pad = max(1.0, (t[-1] - t[0]) * 0.01)
        ax.set_xlim(t[0] - pad, t[-1] + pad)
    ax.set_ylabel("failure score (sum of detection confidences)")
    ax.grid(True, color="#dddddd", lw=0.6)
    ax.tick_params(labelbottom=False)


def _runs(frames: list[ReplayFrame], *,
          own_verdict: bool = False) -> list[tuple[float, float, Level]]:
    """(start, end, level) of each run of frames with the same level (or, ``own_verdict``,
    the same verdict of the frame's camera)."""
    runs: list[tuple[float, float, Level]] = []
    for i, f in enumerate(frames):
        level = f.seen if own_verdict else f.level
        if i + 1 < len(frames):
            end = frames[i + 1].t
        else:
            end = f.t + (f.t - frames[i - 1].t if i else 1.0)
        if runs and runs[-1][2] is level:
            runs[-1] = (runs[-1][0], end, level)
        else:
            runs.append((f.t, end, level))
    return runs
