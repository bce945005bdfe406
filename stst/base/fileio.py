"""Safe file writes: a reader never sees a half-written output, model or cache file, and no user file is lost.

Temporary files are hidden (``.NAME.stst-PID-RANDOM.tmp``) and carry the
writer's process id: a writer killed with SIGKILL leaves one behind, and the
next process that writes into the same folder removes it (only when that
process is gone, so two runs writing to one folder never disturb each other).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from .errors import FileProblem, os_problem

_UMASK = os.umask(0)
os.umask(_UMASK)
_TEMP = re.compile(r"^\..+\.stst-(\d+)-[^.]+\.tmp$")
_swept: set[Path] = set()


def file_sha256(path: str | Path) -> str:
    """Hex sha256 of a file, read in blocks (models and style images are recorded by it)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def sweep_stale_temps(folder: Path) -> list[Path]:
    """Remove temporary files that a killed stst process left in ``folder``; returns them."""
    removed = []
    with contextlib.suppress(OSError):
        for entry in os.scandir(folder):
            match = _TEMP.match(entry.name)
            if match and int(match.group(1)) != os.getpid() and not _alive(int(match.group(1))):
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)
                    removed.append(Path(entry.path))
    return removed


def _temp_file(folder: Path, name: str) -> Path:
    """A new, empty, hidden temporary file in ``folder`` for ``name``, tagged with this process's id."""
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.stst-{os.getpid()}-", suffix=".tmp", dir=folder)
    os.fchmod(fd, 0o666 & ~_UMASK)  # mkstemp makes 0600 files; outputs get the usual permissions
    os.close(fd)
    return Path(tmp)


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is renamed onto ``path``.

    The temporary file lives in the same folder so that the final rename is
    atomic (same file system). On any error it is removed and ``path`` is
    untouched. The first write into a folder sweeps stale temporary files.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    folder = path.parent.resolve()
    if folder not in _swept:
        _swept.add(folder)
        sweep_stale_temps(folder)
    tmp_path = _temp_file(path.parent, path.name)
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)


def check_folder(folder: str | Path, what: str = "output") -> None:
    """Fail now, in one line, if files cannot be made in ``folder`` (a file in the way, no permission).

    An existing folder is tried with a temporary file; a missing one is not
    created here, only checked for a file among its would-be parents.
    """
    folder = Path(folder)
    blocker = next((p for p in [folder, *folder.parents] if p.exists()), None)
    if blocker is not None and not blocker.is_dir():
        raise FileProblem(folder, f"cannot write the {what} here ({blocker} is a file, not a folder)",
                          "choose another location")
    if blocker == folder:
        try:
            _temp_file(folder, what).unlink()
        except OSError as exc:
            raise FileProblem(folder, f"cannot write the {what} here ({os_problem(exc)})",
                              "choose another location") from None


def check_writable(path: str | Path, need_bytes: int = 0, what: str = "output") -> None:
    """Fail now, in one line, if ``path`` cannot be written later (bad folder, no permission, full disk)."""
    path = Path(path)
    if path.is_dir():
        raise FileProblem(path, f"is a folder; give a file name for the {what}")
    folder = path.parent
    try:
        if not folder.is_dir():
            check_folder(folder, what)  # a file among its would-be parents
            folder.mkdir(parents=True, exist_ok=True)
        check_folder(folder, what)  # one temporary file, in the folder as it now is
    except OSError as exc:
        raise FileProblem(path, f"cannot write the {what} here ({os_problem(exc)})",
                          "choose another location") from None
    except FileProblem as exc:  # named by the file the user gave, not its folder
        raise FileProblem(path, exc.problem) from None
    free = shutil.disk_usage(folder).free
    if free < need_bytes:
        raise FileProblem(path, f"not enough free space for the {what} ({free / 1e6:.1f} MB free, "
                          f"{need_bytes / 1e6:.1f} MB needed)", "free some space or choose another location")


def check_target(path: str | Path, overwrite: bool, protected: Iterable[str | Path] = (), what: str = "output") -> None:
    """Refuse to write ``path`` over an existing file without ``overwrite``, and over ``protected`` files ever.

    ``protected`` are the user's inputs (a style image, data set photos, the
    source model): they are never replaced, whatever the options.
    """
    path = Path(path)
    target = path.resolve()
    for item in protected:
        if Path(item).resolve() == target:
            raise FileProblem(path, f"the {what} would overwrite an input file", "choose another output name")
    if path.exists() and not overwrite:
        raise FileProblem(path, "exists", "use --overwrite to replace it, or choose another output name")
