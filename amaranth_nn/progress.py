"""Progress of slow steps: one line per stage with its elapsed time, and a sign of life while a
tool runs.

On a terminal, a running stage shows a spinner and its seconds on one line, which becomes
``stage ... done in 12.3 s``. Elsewhere (a log, CI) the stage prints a line when it starts, a
``still running`` line every :data:`HEARTBEAT` seconds, and a line when it ends.
"""

import sys
import threading
import time
from contextlib import contextmanager

__all__ = ["HEARTBEAT", "Progress"]

#: Seconds between ``still running`` lines when the output is not a terminal.
HEARTBEAT = 30.0

_SPINNER = "|/-\\"


class Progress:
    """Stage lines for a command line, on ``stream`` (stderr by default).

    Parameters
    ----------
    stream : file, optional
    enabled : bool
        ``False`` prints nothing (for library use and tests).
    """

    def __init__(self, stream=None, *, enabled=True):
        self._stream = sys.stderr if stream is None else stream
        self._enabled = enabled
        self._started = time.monotonic()

    @property
    def elapsed(self):
        """Seconds since this object was made."""
        return time.monotonic() - self._started

    def say(self, text):
        """Print one line (nothing if disabled)."""
        if self._enabled:
            print(text, file=self._stream, flush=True)

    @contextmanager
    def stage(self, name, *, live=True):
        """A stage: its start, a spinner or heartbeat while the block runs (``live``), and its
        time. Yields a function that prints a note inside the stage on its own line."""
        if not self._enabled:
            yield lambda text: None
            return
        tty = hasattr(self._stream, "isatty") and self._stream.isatty()
        start = time.monotonic()
        stop = threading.Event()
        lock = threading.Lock()
        state = {"inline": False}

        def write(text, *, inline=False):
            with lock:
                if state["inline"]:
                    self._stream.write("\r\033[K")
                self._stream.write(text if inline else text + "\n")
                self._stream.flush()
                state["inline"] = inline

        def tick():
            n = 0
            while not stop.wait(0.2 if tty else HEARTBEAT):
                seconds = time.monotonic() - start
                if tty:
                    write(f"  {name} {_SPINNER[n % len(_SPINNER)]} {seconds:.0f} s", inline=True)
                    n += 1
                else:
                    write(f"  {name}: still running ({seconds:.0f} s)")

        write(f"  {name} ...", inline=tty)
        thread = threading.Thread(target=tick, daemon=True) if live else None
        if thread is not None:
            thread.start()
        try:
            yield lambda text: write(f"    {text}")
        except BaseException:
            stop.set()
            if thread is not None:
                thread.join()
            write(f"  {name} failed after {time.monotonic() - start:.1f} s")
            raise
        stop.set()
        if thread is not None:
            thread.join()
        write(f"  {name} done in {time.monotonic() - start:.1f} s")
