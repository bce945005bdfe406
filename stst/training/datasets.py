"""Named training sets, fetched once into the stst cache, so that ``stst train --style x.jpg`` needs nothing else.

The default is MS-COCO 2017 val (5,000 photos, 0.8 GB): big and varied enough
for the feed-forward recipe and a short download; ``coco2014-train`` is the set
of Johnson et al. 2016 (82,783 photos, 13.5 GB). COCO's images are Flickr
photos under their authors' Creative Commons licences (https://cocodataset.org/#termsofuse).

A fetch shows size and speed, resumes a partial download with an HTTP Range
request, checks the archive before use (the size the server announced, every
member's CRC, the expected photo count) and moves the unpacked folder into
place atomically. Only the Python standard library is used for it: the job is
one resumable GET and a zip check, which ``urllib`` and ``zipfile`` cover.
"""

from __future__ import annotations

import http.client
import os
import shutil
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from ..base.errors import StstError, first_line, os_problem
from ..base.fileio import check_writable
from ..base.home import stst_home
from ..base.imageio import IMAGE_SUFFIXES

CHUNK = 1 << 20
# The photos that ship with stst (12 Kodak test photos at 384x256, free to copy): enough for the quick recipe,
# which fine-tunes a trained network for minutes, so that `stst train --style x.jpg` on a CPU downloads nothing.
SHIPPED_DATASET = "kodak"
SHIPPED_PHOTOS = Path(__file__).resolve().parents[1] / "examples" / "training"
TIMEOUT_SECONDS = 30


@dataclass(frozen=True)
class Collection:
    """A photo collection published as one zip: where it is, how big, and what it must hold."""

    name: str
    title: str
    url: str
    approx_bytes: int
    photos: int
    folder: str  # the folder inside the zip that holds the photos
    licence: str


COLLECTIONS = {
    c.name: c
    for c in (
        Collection("coco2017-val", "MS-COCO 2017 validation images", "http://images.cocodataset.org/zips/val2017.zip",
                   815_585_330, 5_000, "val2017", "Flickr photos under CC licences (cocodataset.org/#termsofuse)"),
        Collection("coco2014-train", "MS-COCO 2014 training images (Johnson et al. 2016)",
                   "http://images.cocodataset.org/zips/train2014.zip", 13_510_573_713, 82_783, "train2014",
                   "Flickr photos under CC licences (cocodataset.org/#termsofuse)"),
    )
}
DEFAULT_DATASET = "coco2017-val"


class DownloadError(StstError):
    """A named data set could not be fetched or failed its check."""


def datasets_home() -> Path:
    return stst_home() / "datasets"


def _photo_count(names: list[str], folder: str) -> int:
    return sum(1 for n in names if n.startswith(f"{folder}/") and Path(n).suffix.lower() in IMAGE_SUFFIXES)


def _download(collection: Collection, part: Path, progress: bool) -> None:
    """Fetch ``collection.url`` into ``part``, continuing from its current size; fails unless complete."""
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(collection.url, headers={"Range": f"bytes={have}-"} if have else {})
    manual = datasets_home() / Path(collection.url).name
    offline_hint = (f"train on your own photos with --dataset FOLDER, or download {collection.url} by hand "
                    f"and put it at {manual}")
    try:
        response = urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # the part file is already whole
            return
        raise DownloadError(f"cannot download {collection.name} from {collection.url} (HTTP {exc.code}); "
                            f"{offline_hint}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DownloadError(f"cannot download {collection.name} from {collection.url} ({first_line(reason)}); "
                            f"{offline_hint}") from None
    with response:
        if have and response.status != 206:  # the server ignored the Range: start again
            have = 0
        length = int(response.headers.get("Content-Length") or 0)
        total = have + length if length else None
        mode = "ab" if have else "wb"
        with open(part, mode) as f, tqdm(total=total, initial=have, unit="B", unit_scale=True, unit_divisor=1024,
                                         desc=collection.name, disable=not progress, dynamic_ncols=True) as bar:
            try:
                while block := response.read(CHUNK):
                    f.write(block)
                    bar.update(len(block))
            except (OSError, http.client.HTTPException) as exc:  # a reset connection, a short read
                raise DownloadError(f"the download of {collection.name} stopped at {f.tell() / 1e6:.1f} MB "
                                    f"({first_line(exc)}); run the command again to resume it") from None
    got = part.stat().st_size
    if total is not None and got != total:
        raise DownloadError(f"the download of {collection.name} stopped at {got / 1e6:.1f} of {total / 1e6:.1f} MB; "
                            "run the command again to resume it")


def _verify(collection: Collection, archive: Path) -> None:
    """Every member's CRC and the photo count; a bad archive is deleted so that the next run fetches it anew."""
    def bad(problem: str) -> DownloadError:
        archive.unlink(missing_ok=True)
        return DownloadError(f"{archive}: {problem}; it was deleted, run the command again to fetch it anew")

    try:
        with zipfile.ZipFile(archive) as z:
            broken = z.testzip()
            names = z.namelist()
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise bad(f"not a readable zip ({first_line(exc)})") from None
    if broken is not None:
        raise bad(f"failed its integrity check (bad CRC in {broken})")
    count = _photo_count(names, collection.folder)
    if count != collection.photos:
        raise bad(f"holds {count} photos in {collection.folder}/, expected {collection.photos}")


def fetch(collection: Collection, progress: bool = True, log: Callable[[str], None] = print) -> Path:
    """The folder of ``collection``'s photos in the cache, downloaded, checked and unpacked first if needed."""
    home = datasets_home()
    target = home / collection.name
    if target.is_dir():
        return target
    archive = home / Path(collection.url).name
    part = archive.with_name(archive.name + ".part")
    try:
        home.mkdir(parents=True, exist_ok=True)
        if not archive.is_file():
            have = part.stat().st_size if part.exists() else 0
            log(f"fetching the default training set {collection.name} ({collection.title}, {collection.photos:,} "
                f"photos, {collection.approx_bytes / 1e9:.1f} GB{f', resuming at {have / 1e9:.2f} GB' if have else ''}) "
                f"from {collection.url} into {home}; licence: {collection.licence}")
            check_writable(part, 2 * collection.approx_bytes - have, what=f"{collection.name} download")
            _download(collection, part, progress)
            _verify(collection, part)
            os.replace(part, archive)
        else:
            _verify(collection, archive)
        unpacking = home / f".{collection.name}.unpacking-{os.getpid()}"
        shutil.rmtree(unpacking, ignore_errors=True)
        with zipfile.ZipFile(archive) as z:
            z.extractall(unpacking)
        os.replace(unpacking / collection.folder, target)
        shutil.rmtree(unpacking, ignore_errors=True)
        archive.unlink()
    except OSError as exc:
        raise DownloadError(f"{home}: cannot store {collection.name} ({os_problem(exc)})") from None
    log(f"{collection.name}: {collection.photos:,} photos verified and stored in {target}")
    return target


def resolve_dataset(spec: str | Path | None, progress: bool = True, log: Callable[[str], None] = print,
                    default: str = DEFAULT_DATASET) -> Path:
    """A folder of training photos for ``--dataset``: a folder path, a collection name (``kodak`` ships with stst,
    the others are fetched once), or ``None`` for ``default``."""
    spec = default if spec is None else str(spec)
    if Path(spec).is_dir():
        return Path(spec)
    if spec == SHIPPED_DATASET:
        return SHIPPED_PHOTOS
    if spec in COLLECTIONS:
        return fetch(COLLECTIONS[spec], progress, log)
    return Path(spec)
