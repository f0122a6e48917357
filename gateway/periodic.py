"""Background work the gateway repeats: a daemon thread that runs a task every so many seconds
until stopped. A round that raises is logged and the thread goes on: one bad round (a peer
down, a file half-written, a full disk) must not end the work for good."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger("govshare.periodic")


class Periodic:
    """Runs `task` every `seconds` in a thread named `name`; `last_round`: once more when
    stopped (what is counted is written before the gateway closes)."""

    def __init__(self, name: str, seconds: float, task: Callable[[], object], *,
                 last_round: bool = False) -> None:
        self._name = name
        self._seconds = seconds
        self._task = task
        self._last_round = last_round
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    @property
    def stopping(self) -> bool:
        """Whether `stop` was called: a long round checks it between its steps and ends."""
        return self._stopped.is_set()

    def stop(self) -> None:
        self._stopped.set()
        if self._thread.is_alive():
            self._thread.join()

    def _run(self) -> None:
        while not self._stopped.wait(self._seconds):
            self._round()
        if self._last_round:
            self._round()

    def _round(self) -> None:
        try:
            self._task()
        except Exception:  # a thread of its own: keep it alive
            log.exception("%s: a round failed; the next one runs in %s s", self._name,
                          self._seconds)
