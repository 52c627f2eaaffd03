"""A text stream that tests can wait on, line by line (used for tail's stdout and stderr)."""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Callable


class LineSink(io.StringIO):
    """Collects written text; ``wait_for_line`` blocks until a matching complete line arrives."""

    def __init__(self) -> None:
        super().__init__()
        self._changed = threading.Condition()

    def write(self, text: str) -> int:
        with self._changed:
            written = super().write(text)
            self._changed.notify_all()
        return written

    def isatty(self) -> bool:
        return False

    @property
    def lines(self) -> list[str]:
        with self._changed:
            text = self.getvalue()
        return text.split("\n")[:-1]

    def wait_for_line(self, predicate: Callable[[str], bool], timeout: float = 10.0) -> str:
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for line in self.getvalue().split("\n")[:-1]:
                    if predicate(line):
                        return line
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"no matching line within {timeout} s in {self.lines!r}")
                self._changed.wait(remaining)
