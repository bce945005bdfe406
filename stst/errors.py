"""Errors that the CLI reports as one line and an exit code, never as a traceback."""

from __future__ import annotations

from pathlib import Path

# Exit codes: 1 = some files of a batch failed, 2 = the command itself could not run.
EXIT_PARTIAL = 1
EXIT_USAGE = 2


class StstError(Exception):
    """A user-facing error: the message is one line, ``exit_code`` is what the CLI exits with."""

    exit_code = EXIT_USAGE


class FileProblem(StstError):
    """A problem with one named file: the message reads ``<path>: <problem>``."""

    def __init__(self, path: str | Path, problem: str) -> None:
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{path}: {problem}")


def first_line(exc: BaseException, limit: int = 160) -> str:
    """A one-line, bounded summary of an exception from a library, for error messages."""
    text = str(exc).strip().splitlines()
    line = text[0] if text else type(exc).__name__
    return line if len(line) <= limit else line[: limit - 3] + "..."
