"""Stopping a run of ``nncourse grade`` (Ctrl-C, SIGTERM) without a half-written record."""

import contextlib


class Stop:
    """A request to stop grading (Ctrl-C, SIGTERM), honoured only outside the sections that
    write a submission's records, so that none is left half written."""

    def __init__(self):
        self.requested = None  # the signal number that asked
        self._holding = 0

    def request(self, signum):
        self.requested = signum
        if not self._holding:
            raise KeyboardInterrupt

    def check(self):
        if self.requested is not None:
            raise KeyboardInterrupt

    @contextlib.contextmanager
    def held(self):
        self._holding += 1
        try:
            yield
        finally:
            self._holding -= 1
        self.check()
