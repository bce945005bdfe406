"""The default training set: fetched from a local HTTP server made here (nothing reaches the internet)."""

from __future__ import annotations

import http.server
import io
import threading
import zipfile

import pytest
from click.testing import CliRunner

from stst.training import datasets
from stst.cli import main
from stst.training.datasets import COLLECTIONS, DEFAULT_DATASET, Collection, DownloadError, fetch

from conftest import PHOTOS, STYLES, copy_vgg_weights

FOLDER = "val2017"


class Server:
    """Serves one file with HTTP Range support; ``cut_at`` drops the connection after that many bytes once."""

    def __init__(self, payload: bytes) -> None:
        self.payload, self.cut_at, self.ranges = payload, None, []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                start = 0
                if "Range" in self.headers:
                    start = int(self.headers["Range"].removeprefix("bytes=").rstrip("-"))
                server.ranges.append(start)
                body = server.payload[start:]
                self.send_response(206 if start else 200)
                self.send_header("Content-Length", str(len(body)))
                if start:
                    self.send_header("Content-Range", f"bytes {start}-{len(server.payload) - 1}/{len(server.payload)}")
                self.end_headers()
                if server.cut_at is not None:
                    self.wfile.write(body[: server.cut_at])
                    server.cut_at = None
                    self.wfile.flush()
                    self.connection.shutdown(2)  # the transfer breaks off mid-file
                    return
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/val2017.zip"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def photo_zip(photos: int = 5) -> bytes:
    """A zip laid out like COCO's: the photos under val2017/."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as z:
        for p in sorted(PHOTOS.glob("*.jpg"))[:photos]:
            z.write(p, f"{FOLDER}/{p.name}")
    return buffer.getvalue()


@pytest.fixture
def server(monkeypatch, tmp_path, stst_home):
    """A COCO-like download, into a cache of its own (with the session's VGG16 weights, where it has them)."""
    monkeypatch.setenv("STST_HOME", str(tmp_path / "home"))
    copy_vgg_weights(stst_home, tmp_path / "home")
    served = Server(photo_zip())
    monkeypatch.setitem(COLLECTIONS, DEFAULT_DATASET, Collection(
        DEFAULT_DATASET, "test photos", served.url, len(served.payload), 5, FOLDER, "Kodak, free to copy"))
    yield served
    served.close()


def test_fetch_verifies_unpacks_and_is_done_once(server):
    messages = []
    folder = fetch(COLLECTIONS[DEFAULT_DATASET], progress=False, log=messages.append)
    assert sorted(p.name for p in folder.iterdir()) == sorted(p.name for p in PHOTOS.glob("*.jpg"))
    assert "5 photos" in messages[0] and server.url in messages[0] and "licence" in messages[0]
    assert fetch(COLLECTIONS[DEFAULT_DATASET], progress=False, log=messages.append) == folder
    assert server.ranges == [0]  # the second call did not download
    assert not any(p.name.endswith((".zip", ".part")) or p.name.startswith(".") for p in folder.parent.iterdir())


def test_an_interrupted_download_resumes_where_it_stopped(server):
    server.cut_at = len(server.payload) // 2
    with pytest.raises(DownloadError, match=r"stopped at .* run the command again to resume it"):
        fetch(COLLECTIONS[DEFAULT_DATASET], progress=False, log=lambda m: None)
    folder = fetch(COLLECTIONS[DEFAULT_DATASET], progress=False, log=lambda m: None)
    assert server.ranges == [0, len(server.payload) // 2]
    assert len(list(folder.glob("*.jpg"))) == 5


def test_a_corrupt_zip_is_refused_and_deleted(server):
    payload = bytearray(server.payload)
    payload[len(payload) // 3] ^= 0xFF  # one flipped byte inside a photo
    server.payload = bytes(payload)
    with pytest.raises(DownloadError, match=r"failed its integrity check \(bad CRC in val2017/.*\); it was deleted"):
        fetch(COLLECTIONS[DEFAULT_DATASET], progress=False, log=lambda m: None)
    assert not list(datasets.datasets_home().glob("*.zip*")) and not (datasets.datasets_home() / DEFAULT_DATASET).exists()


def test_a_zip_with_the_wrong_photo_count_is_refused(server, monkeypatch):
    monkeypatch.setitem(COLLECTIONS, DEFAULT_DATASET, Collection(
        DEFAULT_DATASET, "test photos", server.url, len(server.payload), 5000, FOLDER, "-"))
    with pytest.raises(DownloadError, match="holds 5 photos in val2017/, expected 5000"):
        fetch(COLLECTIONS[DEFAULT_DATASET], progress=False, log=lambda m: None)


def test_train_without_a_dataset_and_without_network_fails_in_one_line(server, tmp_path):
    server.close()
    result = CliRunner().invoke(main, ["train", "--style", str(STYLES / "starry_night.jpg"), "--preset", "cpu-fast",
                                       "-o", str(tmp_path / "m.pth")])
    assert result.exit_code == 2
    last = result.output.strip().splitlines()[-1]
    assert last.startswith(f"stst: error: cannot download {DEFAULT_DATASET} from {server.url} (")
    assert "--dataset FOLDER" in last and str(datasets.datasets_home() / "val2017.zip") in last


def test_train_without_a_dataset_fetches_the_default_and_trains(server, tmp_path):
    result = CliRunner().invoke(main, ["train", "--style", str(STYLES / "starry_night.jpg"), "--preset", "cpu-fast",
                                       "--iterations", "2",
                                       "--image-size", "32", "--style-size", "64", "--workers", "0", "--precision", "fp32",
                                       "-o", str(tmp_path / "m.pth")])
    assert result.exit_code == 0, result.output
    assert f"fetching the default training set {DEFAULT_DATASET}" in result.output
    assert (tmp_path / "m.pth").is_file() and server.ranges == [0]


def test_a_zip_put_in_place_by_hand_is_used_without_network(server):
    server.close()
    home = datasets.datasets_home()
    home.mkdir(parents=True)
    (home / "val2017.zip").write_bytes(server.payload)
    folder = fetch(COLLECTIONS[DEFAULT_DATASET], progress=False, log=lambda m: None)
    assert len(list(folder.glob("*.jpg"))) == 5 and server.ranges == []
