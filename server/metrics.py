"""A few Prometheus counters, in the text exposition format, with no labels that could
name a repository or a token."""

from __future__ import annotations

import threading
from collections import Counter

__all__ = ["Metrics"]

_HELP = {
    "trustkit_http_requests_total": "HTTP requests answered, by method and status",
    "trustkit_publishes_total": "uploads published",
    "trustkit_pending_total": "uploads kept pending for co-signers",
    "trustkit_refusals_total": "uploads refused, by error code",
    "trustkit_gzip_compressions_total": "metadata bodies gzip-compressed (each is then cached)",
}


class Metrics:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[tuple[str, tuple[tuple[str, str], ...]]] = Counter()

    def count(self, name: str, **labels: str) -> None:
        assert name in _HELP
        with self._lock:
            self._counts[(name, tuple(sorted(labels.items())))] += 1

    def render(self) -> str:
        with self._lock:
            counts = dict(self._counts)
        lines: list[str] = []
        for name, text in _HELP.items():
            lines += [f"# HELP {name} {text}", f"# TYPE {name} counter"]
            series = sorted((labels, value) for (n, labels), value in counts.items() if n == name)
            if not series:
                lines.append(f"{name} 0")
            for labels, value in series:
                rendered = ",".join(f'{key}="{val}"' for key, val in labels)
                lines.append(f"{name}{{{rendered}}} {value}" if rendered else f"{name} {value}")
        return "\n".join(lines) + "\n"
