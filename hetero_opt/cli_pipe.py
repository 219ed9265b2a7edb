"""A reader that closes ``hetero-opt``'s output early (``hetero-opt schema | head -1``).

Python ignores SIGPIPE, so a write to a closed pipe raises :class:`BrokenPipeError` (and rich's
console turns it into ``SystemExit(1)``). The command line instead stops quietly, as a command the
shell's SIGPIPE ends does (``yes | head -1``): no message, exit code :data:`EXIT_CLOSED_PIPE`.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
from collections.abc import Iterator
from typing import TextIO

from rich.console import Console

#: 128 + SIGPIPE (13): the exit status a shell reports for a command ended by a closed pipe.
EXIT_CLOSED_PIPE = 141


def closed_pipe_exit() -> int:
    """Point a closed ``stdout``/``stderr`` at ``/dev/null`` and return :data:`EXIT_CLOSED_PIPE`.

    What is still buffered for the closed pipe would otherwise fail again in the interpreter's own
    flush at exit ("Exception ignored ... BrokenPipeError", exit code 120).
    """
    for stream in (sys.stdout, sys.stderr):
        _flush_or_silence(stream)
    return EXIT_CLOSED_PIPE


def _flush_or_silence(stream: TextIO) -> None:
    """Flush ``stream``; where its pipe is closed, point its file at ``/dev/null`` (then nothing fails later)."""
    try:
        stream.flush()
    except (OSError, ValueError):
        with contextlib.suppress(OSError, ValueError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            try:
                os.dup2(devnull, stream.fileno())
            finally:
                os.close(devnull)


@contextlib.contextmanager
def whole_writes() -> Iterator[None]:
    """``sys.stdout`` writes each text whole, or raises :class:`BrokenPipeError`, within the block.

    Under ``python -u`` (``PYTHONUNBUFFERED``) the text layer writes straight to the raw file, whose write
    returns short when the reader closes the pipe in the middle of it: the text layer drops the rest without
    an error, and a command whose last write that was ended with 0, its output cut, instead of 141. A
    buffered layer in between writes until all is written or the pipe is closed; flushed at every line, it
    shows output as soon as unbuffered output does.
    """
    out = sys.stdout
    if not (isinstance(out, io.TextIOWrapper) and isinstance(out.buffer, io.FileIO)):
        yield  # buffered (or not a file): its writes are whole
        return
    raw = io.FileIO(out.fileno(), "w", closefd=False)
    whole = io.TextIOWrapper(io.BufferedWriter(raw), encoding=out.encoding, errors=out.errors, line_buffering=True)
    sys.stdout = whole
    try:
        yield
    finally:
        sys.stdout = out
        _flush_or_silence(whole)


class QuietOnClosedPipe(Console):
    """A console that falls silent when its pipe closes, instead of ending the program.

    For a command whose products are files (``simulate``): its messages are lost, its run and its
    outputs are not. :attr:`pipe_closed` says whether anything was lost.
    """

    pipe_closed = False

    def on_broken_pipe(self) -> None:
        self.quiet = True
        self.pipe_closed = True
