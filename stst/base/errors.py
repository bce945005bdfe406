"""Errors that the CLI reports as one line and an exit code, never as a traceback.

Exit codes, the same for every subcommand: 0 done; 1 some inputs failed (the
others were done); 2 the command could not run (bad option, bad model, bad
environment); 130 interrupted (Ctrl-C).
"""

from __future__ import annotations

from pathlib import Path

EXIT_PARTIAL = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class StstError(Exception):
    """A user-facing error: the message is one line, ``exit_code`` is what the CLI exits with.

    ``shared``: under torchrun, the same stop reached every process (another
    rank's failure, Ctrl-C); only rank 0 reports it.
    """

    exit_code = EXIT_USAGE

    def __init__(self, message: str = "", shared: bool = False) -> None:
        super().__init__(message)
        self.shared = shared


class FileProblem(StstError):
    """A problem with one named file: the message reads ``<path>: <problem>[; <hint>]``."""

    def __init__(self, path: str | Path, problem: str, hint: str | None = None) -> None:
        self.path = Path(path)
        self.problem = problem if hint is None else f"{problem}; {hint}"
        super().__init__(f"{path}: {self.problem}")


def first_line(exc: BaseException, limit: int = 160) -> str:
    """A one-line, bounded summary of an exception from a library, for error messages."""
    text = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    line = text[0] if text else type(exc).__name__
    return line if len(line) <= limit else line[: limit - 3] + "..."


def os_problem(exc: OSError) -> str:
    """``No space left on device`` rather than ``[Errno 28] No space left on device: '/x/y'``."""
    return exc.strerror or first_line(exc)
