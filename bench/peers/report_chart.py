"""results.png for `bench/compare`: the workloads' figures as bars against the targets,
and the daemons' peak RSS. matplotlib is imported only when the chart is drawn, since
`bench/compare` installs it after start-up."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .report import figure


def write_chart(path: Path, data: dict[str, Any]) -> None:
    """results.png: the summary at a glance, with the targets as dashed lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    summary, systems = data["summary"], data["config"]["systems"]
    fig, axes = plt.subplots(2, 2, figsize=(15, 10))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]

    def bars(
        ax: Any,
        groups: list[tuple[str, dict[str, float | None]]],
        ylabel: str,
        log: bool,
        lines: tuple[tuple[float, str], ...] = (),
    ) -> None:
        names = [s for s in systems if any(g.get(s) is not None for _, g in groups)]
        if not names:
            ax.text(0.5, 0.5, "not measured", ha="center", va="center", transform=ax.transAxes)
            return
        width = 0.8 / max(1, len(groups))
        for i, (label, values) in enumerate(groups):
            xs = [j + (i - (len(groups) - 1) / 2) * width for j in range(len(names))]
            ys = [values.get(n) or 0 for n in names]
            rects = ax.bar(xs, ys, width, label=label, color=colors[i % len(colors)])
            for rect, y in zip(rects, ys, strict=True):
                if y:
                    ax.annotate(
                        f"{y:,.0f}" if y >= 10 else f"{y:.1f}",
                        (rect.get_x() + rect.get_width() / 2, y),
                        ha="center", va="bottom", fontsize=7, rotation=90,
                        xytext=(0, 2), textcoords="offset points",
                    )  # fmt: skip
        for value, label in lines:  # the targets, dashed
            ax.axhline(value, color="grey", linestyle="--", linewidth=1)
            ax.annotate(
                label, (0.99, value), xycoords=("axes fraction", "data"),
                fontsize=7, color="dimgrey", va="bottom", ha="right",
                bbox={"boxstyle": "round,pad=0.1", "fc": "white", "ec": "none", "alpha": 0.8},
            )  # fmt: skip
        ax.set_xticks(range(len(names)))
        ax.set_xticklabels(names, rotation=20)
        ax.set_ylabel(ylabel)
        present = [v for _, g in groups for v in g.values() if v] + [v for v, _ in lines]
        if log and present:
            ax.set_yscale("log")
            ax.set_ylim(min(present) / 2, max(present) * 6)  # room for the labels
        elif present:
            ax.set_ylim(0, max(present) * 1.3)
        ax.grid(axis="y", which="both", alpha=0.3)
        if len(groups) > 1:
            ax.legend(fontsize=8, loc="upper left")

    def figures(workload: str, key: str = "") -> dict[str, float | None]:
        out = {}
        for system, entry in summary.get(workload, {}).items():
            if key:
                out[system] = ((entry.get("latency_us") or {}) if entry.get("ok") else {}).get(key)
            else:
                out[system] = figure(workload, entry)
        return out

    bars(
        axes[0][0],
        [
            ("64 B", figures("tput64")),
            ("1 KiB", figures("tput1k")),
            ("stdin, 300k lines of 64 B", figures("stdin")),
        ],
        "msgs/s (log)",
        True,
        (
            (400_000, "target: zdps-3 (raw Python SUB) >= 400k"),
            (600_000, "target: zdps-3-csub >= 600k"),
            (1_200_000, "target: zdps-3-batches >= 1.2M"),
        ),
    )
    axes[0][0].set_title("Throughput, one publisher -> one subscriber")
    bars(
        axes[0][1],
        [("p50", figures("latency", "p50")), ("p99", figures("latency", "p99"))],
        "µs (log; lower is better)",
        True,
        ((1000, "target: zdps-3 p50 <= 1 ms (p99: <= 3x relay-4's)"),),
    )
    axes[0][1].set_title("One-way latency at 10,000 msg/s, 64 B")
    bars(
        axes[1][0],
        [("deliveries/s", figures("fanout"))],
        "deliveries/s (log)",
        True,
    )
    axes[1][0].set_title("Fan-out: one topic -> 100 subscribers")
    peaks: dict[str, float] = {}
    for run in data["runs"]:
        for daemon, s in (run.get("rss") or {}).items():
            peaks[daemon] = max(peaks.get(daemon, 0.0), s["peak_mib"])
    ax = axes[1][1]
    if peaks:
        names = sorted(peaks)
        ax.bar(range(len(names)), [peaks[n] for n in names], color=colors[3 % len(colors)])
        ax.set_xticks(range(len(names)))
        ax.set_xticklabels(names, rotation=20)
        ax.set_ylabel("MiB")
        ax.grid(axis="y", alpha=0.3)
    ax.set_title("Peak daemon RSS over the run")
    fig.suptitle(
        f"bench/compare ({data['config']['mode']}, {data['meta']['date']}, "
        f"{data['meta']['machine']['nproc']} CPUs)"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
