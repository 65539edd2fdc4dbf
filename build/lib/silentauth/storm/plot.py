"""The storm as a picture: refresh load over time, one line per scenario."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from silentauth.storm.simulate import ScenarioResult, StormConfig

COLORS = ("#d62728", "#1f77b4", "#2ca02c", "#9467bd")


def plot(results: list[ScenarioResult], config: StormConfig, path: str) -> None:
    """Write a PNG of refreshes per second (per-minute bins) over virtual time."""
    import matplotlib

    matplotlib.use("Agg")  # files only: never needs a display
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 5.6), dpi=110)
    bin_s = config.bin_seconds
    for r, color in zip(results, COLORS, strict=False):
        rates = r.timeline.rates(bin_s)
        hours = [(i + 0.5) * bin_s / 3600 for i in range(len(rates))]
        s = r.stats
        ax.plot(
            hours,
            rates,
            color=color,
            linewidth=1.2,
            label=f"{r.scenario.label}: peak {s.peak:.0f}/s, mean {s.mean:.1f}/s, "
            f"peak/mean {s.peak_to_mean:.2f}",
        )
    ax.axvspan(0, config.warmup / 3600, color="0.9", zorder=0)
    ax.text(
        config.warmup / 7200, 0.97, "warm-up\n(not measured)", transform=ax.get_xaxis_transform(),
        ha="center", va="top", fontsize=8, color="0.4",
    )
    ax.set_ylim(bottom=0)
    ax.set_xlim(0, config.hours)
    ax.set_xlabel("virtual time since the login burst (hours)")
    ax.set_ylabel(f"refreshes per second ({bin_s} s bins)")
    ax.set_title(
        f"{config.sessions:,} sessions logging in within {config.burst_seconds:g} s; "
        f"access TTL {config.access_ttl} s, client refreshes {config.margin:g} s early"
    )
    ax.grid(True, which="major", alpha=0.3)
    default = next((r for r in results if r.scenario.name == "jitter_on"), None)
    if default is not None:
        goal = 1.5 * default.stats.mean
        ax.axhline(goal, color="0.3", linestyle=":", linewidth=1, label="goal: 1.5 x mean (default jitter)")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=1, fontsize=8, frameon=False)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
