"""What a long encode pass tells its user.

On a terminal: a tqdm bar. Elsewhere (CI logs, pipes): one line every ``interval``
seconds with texts done, texts/s and the ETA, so a cold run is never silent for minutes,
and nothing is printed for passes that finish within the interval.
"""

from __future__ import annotations

import sys
import time

INTERVAL = 10.0


class LineProgress:
    """A plain-text progress reporter with tqdm's ``update``/``close`` interface."""

    def __init__(self, total: int, desc: str, *, stream=None, interval: float = INTERVAL,
                 clock=time.monotonic):
        self.total = total
        self.desc = desc
        self.stream = stream if stream is not None else sys.stderr
        self.interval = interval
        self.clock = clock
        self.done = 0
        self.start = clock()
        self.last = self.start
        self.printed = False

    def line(self) -> str:
        elapsed = max(self.clock() - self.start, 1e-9)
        rate = self.done / elapsed
        pct = 100.0 * self.done / self.total if self.total else 100.0
        eta = (self.total - self.done) / rate if rate > 0 else float("nan")
        eta_s = f"{eta:.0f}s" if eta == eta else "?"
        return (f"{self.desc}: {self.done}/{self.total} texts ({pct:.0f}%), "
                f"{rate:.1f} texts/s, ETA {eta_s}")

    def update(self, n: int = 1) -> None:
        self.done += n
        now = self.clock()
        if now - self.last >= self.interval:
            self.last = now
            self.printed = True
            print(self.line(), file=self.stream, flush=True)

    def close(self) -> None:
        if self.printed:  # a pass that reported progress also reports its end
            print(self.line().split(", ETA")[0] + ", done", file=self.stream, flush=True)


def progress(total: int, desc: str, *, stream=None):
    """A tqdm bar on a terminal, else a :class:`LineProgress`."""
    stream = stream if stream is not None else sys.stderr
    if getattr(stream, "isatty", lambda: False)():
        try:
            from tqdm.auto import tqdm
        except ImportError:  # pragma: no cover
            return LineProgress(total, desc, stream=stream)
        return tqdm(total=total, desc=desc, unit="text", file=stream, leave=False)
    return LineProgress(total, desc, stream=stream)


def role_label(role_key: str) -> str:
    """The bar's label for a role key: 'any' (roles share vectors) reads as 'texts'."""
    return {"any": "texts", "query": "queries", "document": "documents",
            "text": "texts", "prompted": "prompted texts"}.get(role_key, role_key)
