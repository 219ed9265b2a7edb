"""A reader that closes ``hetero-opt``'s output early (``hetero-opt schema | head -1``).

Python ignores SIGPIPE, so a write to a closed pipe raises :class:`BrokenPipeError` (and rich's
console turns it into ``SystemExit(1)``). The command line instead stops quietly, as a command the
shell's SIGPIPE ends does (``yes | head -1``): no message, exit code :data:`EXIT_CLOSED_PIPE`.
"""

from __future__ import annotations

import contextlib
import os
import sys

from rich.console import Console

#: 128 + SIGPIPE (13): the exit status a shell reports for a command ended by a closed pipe.
EXIT_CLOSED_PIPE = 141


def closed_pipe_exit() -> int:
    """Point a closed ``stdout``/``stderr`` at ``/dev/null`` and return :data:`EXIT_CLOSED_PIPE`.

    What is still buffered for the closed pipe would otherwise fail again in the interpreter's own
    flush at exit ("Exception ignored ... BrokenPipeError", exit code 120).
    """
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            with contextlib.suppress(OSError, ValueError):
                devnull = os.open(os.devnull, os.O_WRONLY)
                try:
                    os.dup2(devnull, stream.fileno())
                finally:
                    os.close(devnull)
    return EXIT_CLOSED_PIPE


class QuietOnClosedPipe(Console):
    """A console that falls silent when its pipe closes, instead of ending the program.

    For a command whose products are files (``simulate``): its messages are lost, its run and its
    outputs are not. :attr:`pipe_closed` says whether anything was lost.
    """

    pipe_closed = False

    def on_broken_pipe(self) -> None:
        self.quiet = True
        self.pipe_closed = True
