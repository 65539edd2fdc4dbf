"""Refresh load: a per-second timeline and the figures read off it.

The simulator and the live driver both record one count per refresh at the
second it happened; :func:`load_stats` turns that into refreshes per second
over fixed bins, after a warm-up that is excluded (the login burst itself and
the first refresh wave are not the steady state we judge).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class LoadStats:
    """Peak and mean refresh rate (per second) over the measured window."""

    peak: float
    mean: float
    peak_to_mean: float

    def as_dict(self) -> dict[str, float]:
        """The JSON shape ``silentauth storm --json`` promises: ``{"peak", "mean", "peak_to_mean"}``."""
        return {
            "peak": round(self.peak, 3),
            "mean": round(self.mean, 3),
            "peak_to_mean": round(self.peak_to_mean, 3),
        }


@dataclass
class Timeline:
    """Refreshes counted per whole second since the start of the burst."""

    seconds: int
    counts: list[int] = field(init=False)

    def __post_init__(self) -> None:
        self.counts = [0] * max(0, self.seconds)

    def record(self, offset: float) -> None:
        """Count one refresh at ``offset`` seconds after the burst began."""
        i = int(offset)
        if 0 <= i < self.seconds:
            self.counts[i] += 1

    @property
    def total(self) -> int:
        return sum(self.counts)

    def rates(self, bin_seconds: int, start: int = 0) -> list[float]:
        """Refreshes per second averaged over consecutive ``bin_seconds`` bins.

        A trailing partial bin is dropped: it would read low and bias the mean.
        """
        if bin_seconds < 1:
            raise ValueError("bin_seconds must be at least 1")
        out: list[float] = []
        for lo in range(start, self.seconds - bin_seconds + 1, bin_seconds):
            out.append(sum(self.counts[lo : lo + bin_seconds]) / bin_seconds)
        return out


def load_stats(timeline: Timeline, warmup: int, bin_seconds: int) -> LoadStats:
    """Peak/mean of the binned refresh rate from ``warmup`` seconds on.

    Bins are wider than a second on purpose: with 10 000 sessions the mean is
    about a dozen refreshes per second, so one-second counts are dominated by
    Poisson noise and even a perfectly flat load would show peak/mean > 2.
    """
    rates = timeline.rates(bin_seconds, start=warmup)
    if not rates:
        raise ValueError("nothing to measure: the run is not longer than the warm-up plus one bin")
    peak = max(rates)
    mean = sum(rates) / len(rates)
    return LoadStats(peak, mean, peak / mean if mean > 0 else 0.0)
