"""CPU and RSS of each process, from ``/proc/<pid>/stat`` and ``/proc/<pid>/status``, sampled
every second: a stage's figures include its child processes (receiver workers)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

__all__ = ["Sampler", "Series", "slope"]

_TICK = os.sysconf("SC_CLK_TCK")


def _tree(pid: int) -> Iterator[int]:
    yield pid
    with contextlib.suppress(OSError):
        for task in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError), open(f"/proc/{pid}/task/{task}/children") as f:
                for child in f.read().split():
                    yield from _tree(int(child))


def _cpu_s(pid: int) -> float:
    """User plus system CPU seconds of one process."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK  # utime, stime: fields 14, 15


def _rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


@dataclass
class Series:
    """One process name's samples: (seconds since the start, CPU share of one core, RSS MiB)."""

    samples: list[tuple[float, float, float]] = field(default_factory=list)
    restarts: list[float] = field(default_factory=list)


class Sampler:
    """Call :meth:`sample` every second with the processes to watch, by name."""

    def __init__(self) -> None:
        self.series: dict[str, Series] = {}
        self._last: dict[int, tuple[float, float]] = {}  # pid -> (at, cpu seconds)
        self._pid: dict[str, int] = {}

    def sample(self, at: float, processes: Iterable[tuple[str, int]]) -> None:
        last: dict[int, tuple[float, float]] = {}
        for name, pid in processes:
            series = self.series.setdefault(name, Series())
            if self._pid.get(name, pid) != pid:
                series.restarts.append(at)
            self._pid[name] = pid
            cpu = busy = rss = 0.0
            for member in _tree(pid):
                try:
                    seconds, kb = _cpu_s(member), _rss_kb(member)
                except (OSError, ValueError, IndexError):
                    continue  # exited between the listing and the read
                before_at, before = self._last.get(member, (at, seconds))
                if at > before_at:
                    busy += (seconds - before) / (at - before_at)
                last[member] = (at, seconds)
                cpu += seconds
                rss += kb / 1024
            series.samples.append((at, busy, rss))
        self._last = last

    def summary(self, window_s: float) -> dict[str, dict[str, object]]:
        """Per name: mean and peak CPU (in cores), RSS at the end and at peak (MiB), and the
        RSS slope over the last ``window_s`` (since the last restart, if later)."""
        out: dict[str, dict[str, object]] = {}
        for name, series in sorted(self.series.items()):
            samples = series.samples
            if not samples:
                continue
            end = samples[-1][0]
            since = max([end - window_s, *[r for r in series.restarts if r <= end]])
            recent = [(t, rss) for t, _, rss in samples if t >= since]
            cpu = [c for _, c, _ in samples[1:]]
            out[name] = {
                "cpu_mean_cores": round(sum(cpu) / len(cpu), 3) if cpu else None,
                "cpu_peak_cores": round(max(cpu), 3) if cpu else None,
                "rss_end_mib": round(samples[-1][2], 1),
                "rss_peak_mib": round(max(s[2] for s in samples), 1),
                "restarts": len(series.restarts),
                **slope(recent),
            }
        return out

    def timeline(self, every_s: float = 10.0) -> dict[str, list[list[float]]]:
        """Per name, one [t, cpu cores, rss MiB] every ``every_s`` (for the JSON report)."""
        out: dict[str, list[list[float]]] = {}
        for name, series in self.series.items():
            rows, next_at = [], 0.0
            for t, cpu, rss in series.samples:
                if t >= next_at:
                    rows.append([round(t, 1), round(cpu, 3), round(rss, 1)])
                    next_at = t + every_s
            out[name] = rows
        return out


def slope(points: list[tuple[float, float]]) -> dict[str, object]:
    """The least-squares slope of RSS over time: MiB per minute, and the growth it makes over
    the points' span as a percentage of the fitted start."""
    if len(points) < 3:
        return {"rss_slope_mib_per_min": None, "rss_growth_pct": None, "rss_window_s": 0.0}
    n = len(points)
    mt = sum(t for t, _ in points) / n
    mr = sum(r for _, r in points) / n
    var = sum((t - mt) ** 2 for t, _ in points)
    per_s = sum((t - mt) * (r - mr) for t, r in points) / var if var else 0.0
    span = points[-1][0] - points[0][0]
    start = mr - per_s * (mt - points[0][0])
    return {
        "rss_slope_mib_per_min": round(per_s * 60, 3),
        "rss_growth_pct": round(100 * per_s * span / start, 2) if start > 0 else None,
        "rss_window_s": round(span, 1),
    }
