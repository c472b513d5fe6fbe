"""Progress reporting for dataset-level work: a tqdm bar, a ``progress(done, total)`` callback, or nothing."""
from __future__ import annotations

from . import validate

ProgressArg = "bool | Callable[[int, int], None] | None"


class Progress:
    """``progress=True`` → tqdm bar; a callable → ``progress(done, total)``; ``None``/``False`` → silent."""

    def __init__(self, progress, total: int, desc: str):
        self.total = int(total)
        self.done = 0
        self.bar = None
        self.cb = None
        if progress is True:
            try:
                from tqdm.auto import tqdm

                self.bar = tqdm(total=self.total, desc=desc, leave=False)
            except ImportError:  # pragma: no cover - tqdm is a dependency
                self.bar = None
        elif validate.progress(progress) is not None and progress is not False:
            self.cb = progress

    def update(self, n: int = 1) -> None:
        self.done = min(self.total, self.done + int(n))
        if self.bar is not None:
            self.bar.update(int(n))
        if self.cb is not None:
            self.cb(self.done, self.total)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
