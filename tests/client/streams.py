"""Line-by-line waiting on output: an in-memory text stream and a subprocess pipe reader."""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Callable
from typing import IO


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


class LineReader:
    """Reads a subprocess pipe in a thread so tests can wait for a line with a timeout."""

    def __init__(self, stream: IO[str]) -> None:
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()

    def wait_for(self, text: str, timeout: float = 10.0) -> str:
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for line in self.lines:
                    if text in line:
                        return line
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"{text!r} not printed within {timeout} s: {self.lines}")
                self._changed.wait(remaining)
