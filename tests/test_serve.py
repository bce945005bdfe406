"""``stst serve``: the HTTP API through Starlette's TestClient and a real server, the live socket, and its limits."""

import io
import json
import re
import struct
import subprocess
import sys
import time
import zlib
from concurrent.futures import ThreadPoolExecutor

import av
import httpx2 as httpx
import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image
from starlette.testclient import TestClient

from stst.cli import main
from stst.model.bundled import bundled_styles
from stst.model.checkpoint import load_checkpoint
from stst.serve.app import ServeConfig, create_app
from stst.serve.live import _Slot
from stst.training.options import PRESETS

from conftest import HEIF, PHOTOS, STYLES, make_clip

PHOTO = PHOTOS / "kodim23.jpg"  # 384x256
LOCAL = "http://localhost"  # the server serves this machine's names only (TestClient's own is testserver)


@pytest.fixture(scope="module")
def client():
    with TestClient(create_app(ServeConfig(precision="fp32", backend="torch")), base_url=LOCAL) as client:
        yield client


def pixels(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), dtype=np.int16)


def post(client, data: bytes = PHOTO.read_bytes(), name: str = "photo.jpg", **fields):
    return client.post("/api/stylize", files={"image": (name, data)}, data={k: str(v) for k, v in fields.items()})


def png_header(width: int, height: int) -> bytes:
    """A PNG that declares ``width`` x ``height`` and holds a few bytes of pixels."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def test_models_lists_every_bundled_style_with_its_tiers(client):
    answer = client.get("/api/models").json()
    styles = bundled_styles()
    assert [m["name"] for m in answer["models"]] == list(styles)
    assert answer["default"] == "starry_night"
    for model in answer["models"]:
        assert model["tiers"] == list(styles[model["name"]]) and model["title"]
        assert model["macs_per_pixel"]["realtime"] < model["macs_per_pixel"]["full"]


def test_the_api_gives_what_the_command_line_gives(client, tmp_path):
    out = tmp_path / "cli.png"
    look = {"strength": 0.7, "stroke_scale": 1.5, "preserve_colors": "true"}
    result = CliRunner().invoke(main, ["stylize", str(PHOTO), "-o", str(out), "--precision", "fp32", "--backend",
                                       "torch", "--strength", "0.7", "--stroke-scale", "1.5", "--preserve-colors"])
    assert result.exit_code == 0, result.output
    answer = post(client, model="starry_night", **look)
    assert answer.status_code == 200 and answer.headers["content-type"] == "image/png"
    api, cli = pixels(answer.content), pixels(out.read_bytes())
    assert api.shape == cli.shape == (256, 384, 3)
    assert np.abs(api - cli).max() <= 1


def test_tier_format_and_max_size_fields(client):
    answer = post(client, model="udnie", tier="realtime", format="jpg", max_size=192)
    assert answer.status_code == 200 and answer.headers["content-type"] == "image/jpeg"
    assert answer.headers["x-stst-model"] == "udnie-realtime"
    assert Image.open(io.BytesIO(answer.content)).size == (192, 128)
    iphone = post(client, HEIF.read_bytes(), "IMG_0001.HEIC", tier="realtime", format="jpg", max_size=192)
    assert iphone.status_code == 200 and Image.open(io.BytesIO(iphone.content)).size == (128, 192)  # upright
    # what the page asks for a photo its browser cannot decode: the photo as the server reads it
    shown = client.post("/api/photo", files={"image": ("IMG_0001.HEIC", HEIF.read_bytes())})
    assert shown.status_code == 200 and shown.headers["content-type"] == "image/jpeg"
    assert Image.open(io.BytesIO(shown.content)).size == (256, 384)
    refused = [client.post("/api/photo", files={"image": ("x.heic", b"")}),
               client.post("/api/photo", files={"image": ("x.heic", b"not a photo")}), client.post("/api/photo")]
    assert [r.status_code for r in refused] == [422, 422, 400], [r.text for r in refused]
    assert refused[1].json()["error"].startswith("x.heic: not a readable image")


@pytest.mark.parametrize("case, status, words", [
    ("random bytes", 422, "not a readable image"),
    ("truncated png", 422, "not a readable image"),
    ("40000x40000 header", 413, "megapixels, more than the limit"),
    ("empty", 422, "empty upload"),
    ("model ../", 404, "unknown model '../models/starry_night'"),
    ("unknown tier", 400, "field 'tier': 'ultra' is not one of full, light, realtime"),
    ("strength 2", 400, "field 'strength'"),
    ("format gif", 400, "field 'format'"),
    ("no image field", 400, "no file in the multipart field 'image'"),
])
def test_bad_requests_get_a_4xx_json_error_and_the_next_request_works(client, case, status, words):
    png = io.BytesIO()
    Image.open(PHOTO).save(png, format="PNG")
    requests = {
        "random bytes": lambda: post(client, np.random.default_rng(0).bytes(5000), "x.png"),
        "truncated png": lambda: post(client, png.getvalue()[:3000], "cut.png"),
        "40000x40000 header": lambda: post(client, png_header(40000, 40000), "huge.png"),
        "empty": lambda: post(client, b"", "empty.jpg"),
        "model ../": lambda: post(client, model="../models/starry_night"),
        "unknown tier": lambda: post(client, tier="ultra"),
        "strength 2": lambda: post(client, strength=2),
        "format gif": lambda: post(client, format="gif"),
        "no image field": lambda: client.post("/api/stylize", data={"model": "udnie"}),
    }
    answer = requests[case]()
    assert answer.status_code == status
    assert words in answer.json()["error"]
    assert post(client, tier="realtime").status_code == 200


def test_an_upload_over_the_limit_is_refused_before_it_is_read():
    with TestClient(create_app(ServeConfig(max_upload_mb=0.01, precision="fp32", backend="torch")),
                    base_url=LOCAL) as small:
        answer = post(small)  # 40 kB
        assert answer.status_code == 413 and "larger than the limit of 0.01 MB" in answer.json()["error"]
        assert post(small, png_header(8, 8), "tiny.png").status_code == 422  # small ones are still read


def test_a_clip_is_stylized_with_progress_and_its_files_are_removed(tmp_path):
    clip = make_clip(tmp_path / "my clip.mp4", frames=12, size=(64, 48))
    app = create_app(ServeConfig(precision="fp32", backend="torch"))
    with TestClient(app, base_url=LOCAL) as client:
        answer = client.post("/api/clips", files={"video": ("my clip.mp4", clip.read_bytes())},
                             data={"model": "the_scream", "tier": "realtime"})
        assert answer.status_code == 202, answer.text
        job = answer.json()
        folder = app.state.server.clips.folder
        for _ in range(600):  # a minute: 600 polls without a pause once ran out before a cold first clip ended
            job = client.get(f"/api/clips/{job['id']}").json()
            if job["state"] in ("done", "failed"):
                break
            time.sleep(0.1)
        assert job["state"] == "done" and job["frames"] == job["total"] == 12, job
        video = client.get(f"/api/clips/{job['id']}/video")
        assert video.status_code == 200
        assert 'filename="my_clip-the_scream-realtime.mp4"' in video.headers["content-disposition"]
        with av.open(io.BytesIO(video.content)) as out:
            assert sum(1 for _ in out.decode(video=0)) == 12
        assert [p.name for p in folder.iterdir()] == [f"{job['id']}-out.mp4"]  # the upload is gone
        refused = client.post("/api/clips", files={"video": ("notes.mp4", b"not a clip")})
        assert refused.status_code == 422 and "not a video clip" in refused.json()["error"]
        sound = make_clip(tmp_path / "voice.m4a", pictures=False).read_bytes()
        refused = client.post("/api/clips", files={"video": ("voice.m4a", sound)})
        assert refused.status_code == 422 and "voice.m4a: has no video stream (sound alone)" in refused.json()["error"]
        assert client.get("/api/clips/nope").status_code == 404
    assert not folder.exists()  # stopping the server removes every upload and result


def test_the_live_socket_answers_frames_and_survives_bad_ones(client):
    frame = io.BytesIO()
    Image.open(PHOTO).save(frame, format="JPEG")
    with client.websocket_connect("ws://localhost/api/live") as ws:
        ws.send_bytes(frame.getvalue())
        note = json.loads(ws.receive_text())
        assert note["tier"] == "realtime" and note["model"] == "starry_night" and note["ms"] > 0
        assert Image.open(io.BytesIO(ws.receive_bytes())).size == (384, 256)
        ws.send_bytes(b"\x00garbage")
        assert json.loads(ws.receive_text()) == {"error": "frame: not a readable image (no image format that Pillow "
                                                          "knows)", "frame": True, "dropped": 0}
        ws.send_text(json.dumps({"model": "../x"}))
        assert "unknown model '../x'" in json.loads(ws.receive_text())["error"]
        ws.send_text(json.dumps({"model": "udnie", "tier": "full", "strength": 0.5}))
        ws.send_bytes(frame.getvalue())
        note = json.loads(ws.receive_text())
        assert (note["model"], note["tier"]) == ("udnie", "full")
        assert Image.open(io.BytesIO(ws.receive_bytes())).size == (384, 256)


def test_a_newer_frame_replaces_the_waiting_one():
    slot = _Slot()
    for frame in (b"1", b"2", b"3"):
        slot.put(frame)
    import anyio

    assert anyio.run(slot.take) == b"3" and slot.dropped == 2


def test_a_real_server_answers_8_concurrent_requests(served):
    models = ["starry_night", "udnie", "the_scream", "great_wave"] * 2
    tiers = ["realtime", "full"] * 4

    def one(i: int):
        with httpx.Client(timeout=120) as http:
            return http.post(served.url + "api/stylize", files={"image": ("p.jpg", PHOTO.read_bytes())},
                             data={"model": models[i], "tier": tiers[i]})

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(one, range(8)))
    assert [a.status_code for a in answers] == [200] * 8
    for i, answer in enumerate(answers):
        assert answer.headers["x-stst-model"] == models[i] + ("" if tiers[i] == "full" else "-realtime")
    # the same model and tier give the same picture whichever request ran first
    assert np.abs(pixels(answers[0].content) - pixels(answers[4].content)).max() == 0
    with httpx.Client() as http:
        bad = http.post(served.url + "api/stylize", files={"image": ("x.png", b"garbage")})
    assert bad.status_code == 422
    assert "POST /api/stylize 422: x.png: not a readable image" in served.log.read_text()


def test_the_page_and_its_files_are_served(served):
    with httpx.Client() as http:
        page = http.get(served.url)
        assert page.status_code == 200 and "<title>stst" in page.text
        for name in ("app.js", "style.css"):
            assert http.get(served.url + f"static/{name}").status_code == 200
        assert "http" not in page.text.replace("http-equiv", "")  # nothing fetched from the internet


def test_off_this_machine_a_token_is_made_and_printed_and_without_it_requests_get_401(tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "stst", "serve", "--host", "0.0.0.0", "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        shown, local = proc.stdout.readline(), proc.stdout.readline()
        assert re.fullmatch(r"stst serve: http://\S+:\d+/\?token=[\w-]{32} \(Ctrl-C to stop\)\n", shown), shown
        url = re.fullmatch(r"  on this machine: (http://127\.0\.0\.1:\d+/\?token=[\w-]{32})\n", local).group(1)
        token = url.split("=")[1]
        assert url.endswith(shown.split("=")[1].split()[0])
        with httpx.Client() as http:
            bare = url.split("?")[0]
            refused = http.get(bare + "api/models")
            assert refused.status_code == 401 and "a token is needed" in refused.json()["error"]
            assert http.get(bare + "api/models", headers={"Authorization": f"Bearer {token}"}).status_code == 200
            assert http.get(url.replace("/?", "/api/models?")).status_code == 200
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=20)
    assert "warning" not in err and "GET /api/models 401: a token is needed" in err


def test_no_token_off_this_machine_is_warned_about_and_token_with_no_token_is_a_usage_error():
    proc = subprocess.Popen([sys.executable, "-m", "stst", "serve", "--host", "0.0.0.0", "--port", "0", "--no-token"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert "token" not in proc.stdout.readline()
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=20)
    assert "warning: listening on 0.0.0.0 without a token: anyone who can reach this machine" in err
    result = CliRunner().invoke(main, ["serve", "--token", "x", "--no-token"])
    assert result.exit_code == 2 and "--token and --no-token contradict each other" in result.output


def test_the_command_line_does_not_import_the_server():
    code = "import sys, stst.cli; print(sorted(m for m in ('starlette', 'uvicorn', 'multipart') if m in sys.modules))"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "[]"


def test_models_dir_adds_its_styles_and_skips_a_broken_file(tmp_path, untrained_model_path, caplog):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "mystyle.pth").write_bytes(untrained_model_path.read_bytes())
    (folder / "broken.pth").write_bytes(b"not a model")
    with TestClient(create_app(ServeConfig(models=folder, precision="fp32", backend="torch")),
                    base_url=LOCAL) as mine:
        names = [m["name"] for m in mine.get("/api/models").json()["models"]]
        assert "mystyle" in names and "starry_night" in names and "broken" not in names
        assert post(mine, model="mystyle").status_code == 200
    assert "broken.pth" in caplog.text and "broken is not served" in caplog.text


def test_a_painting_becomes_a_style_with_progress_a_preview_and_a_place_in_the_queue(tmp_path):
    models = tmp_path / "models"
    models.mkdir()
    app = create_app(ServeConfig(models=models, precision="fp32", backend="torch"))
    painting = (STYLES / "the_scream.jpg").read_bytes()
    with TestClient(app, base_url=LOCAL) as client:
        refused = [client.post("/api/styles", files={"painting": ("x.jpg", b"not an image")}),
                   client.post("/api/styles", files={"painting": ("x.jpg", b"")}),
                   client.post("/api/styles", files={"painting": ("x.jpg", painting)}, data={"minutes": "600"}),
                   client.post("/api/styles", data={"minutes": "1"})]
        assert [r.status_code for r in refused] == [422, 422, 400, 400], [r.text for r in refused]
        assert "x.jpg: not a readable image" in refused[0].json()["error"]
        first = client.post("/api/styles", files={"painting": ("the_scream.jpg", painting),
                                                  "photo": ("me.jpg", PHOTO.read_bytes())}, data={"minutes": "0.05"})
        thumbnail = io.BytesIO()
        Image.open(io.BytesIO(painting)).resize((48, 30)).save(thumbnail, "JPEG")
        second = client.post("/api/styles", files={"painting": ("../../Mon Tableau!.jpg", thumbnail.getvalue())},
                             data={"minutes": "0.05"})
        assert first.status_code == second.status_code == 202, (first.text, second.text)
        assert first.json()["name"] == "the_scream-2"  # never a style the server has, never the client's path
        assert second.json()["name"] == "mon_tableau_" and second.json()["place"] in (1, 2)
        jobs = [first.json(), second.json()]
        for _ in range(1200):
            jobs = [client.get(f"/api/styles/{job['id']}").json() for job in jobs]
            if all(job["state"] in ("done", "failed") for job in jobs):
                break
            time.sleep(0.1)
        assert [job["state"] for job in jobs] == ["done", "done"], jobs
        assert jobs[0]["notes"] == []
        assert jobs[1]["notes"] == ["mon_tableau_.jpg is only 48x30 pixels, enlarged 11x to 512 (--style-size): the "
                                    "style's strokes come out blurred; a larger picture of the painting gives a better "
                                    "style"]  # as uploaded (cut to a safe name), never the server's path
        assert jobs[0]["iteration"] >= 1 and jobs[0]["seconds"] >= 3.0 and jobs[0]["preview"]
        preview = client.get(f"/api/styles/{jobs[0]['id']}/preview")
        assert preview.status_code == 200 and Image.open(io.BytesIO(preview.content)).size == (384, 256)
        assert client.get(f"/api/styles/{jobs[1]['id']}/preview").status_code == 404  # no photo, no preview
        assert sorted(p.name for p in models.iterdir()) == ["mon_tableau_.pth", "the_scream-2.pth"]
        made = load_checkpoint(models / "the_scream-2.pth").metadata
        assert made["options"]["palette_weight"] == PRESETS["quick"]["palette_weight"]  # the command line's recipe
        assert made["options"]["palette_fit"] and "colour_map" in made
        names = [m["name"] for m in client.get("/api/models").json()["models"]]
        assert "the_scream-2" in names and "mon_tableau_" in names
        assert post(client, model="the_scream-2", max_size=64).status_code == 200
        lacking = post(client, model="the_scream-2", tier="light")  # a tier, but one a new style lacks
        assert lacking.status_code == 404 and lacking.json()["error"] == "the_scream-2 has no light tier; it has: full"
        assert client.get("/api/styles/nope").status_code == 404
        # a mix of two styles the server has: a job like a painting's, then a style in the grid
        mixed = client.post("/api/styles", data={"mix": "starry_night=0.7, udnie=0.3", "minutes": "0.05"},
                            files={"photo": ("me.jpg", PHOTO.read_bytes())})
        assert mixed.status_code == 202 and mixed.json()["name"] == "starry_night70+udnie30", mixed.text
        for _ in range(1200):
            job = client.get(f"/api/styles/{mixed.json()['id']}").json()
            if job["state"] in ("done", "failed"):
                break
            time.sleep(0.1)
        assert job["state"] == "done" and job["preview"], job
        assert (models / "starry_night70+udnie30.pth").is_file()
        assert post(client, model="starry_night70+udnie30", max_size=64).status_code == 200


def test_a_mix_is_made_by_the_styles_route_and_refused_in_one_line_elsewhere(client):
    answer = post(client, mix="starry_night=0.7,udnie=0.3", max_size=64)
    assert answer.status_code == 400
    assert answer.json()["error"].startswith("mix: a mix is trained first, by POST /api/styles with mix=a=0.7,b=0.3")
    refused = [client.post("/api/styles", data={"mix": "starry_night=1"}),
               client.post("/api/styles", data={"mix": "starry_night=1,udnie=0"}),
               client.post("/api/styles", data={"mix": "nope=1,udnie=1"}),
               client.post("/api/styles", data={"mix": "starry_night=lots,udnie=1"})]
    assert [r.status_code for r in refused] == [400, 400, 404, 400], [r.text for r in refused]
    assert refused[0].json()["error"] == "'starry_night=1': a mix needs two styles or more, with weights above 0"
    assert refused[3].json()["error"] == "'starry_night=lots': the weight after '=' must be a number"


