"""The page in a real browser: Debian's Chromium driven by Playwright, with a fake camera playing a clip we make.

Skips with the reason where Chromium or Playwright is missing (``.ci/run`` installs both).
Set ``STST_SCREENSHOTS=FOLDER`` to keep screenshots of the page (the README's come from here).
"""

import base64
import os
import shutil
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from conftest import HEIF, PHOTOS, STYLES, make_clip

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
playwright = pytest.importorskip("playwright.sync_api", reason="needs playwright (pip install '.[test]')")
pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium (apt-get install chromium)")


def camera_clip(path: Path, frames: int = 8) -> Path:
    """A 640x480 .y4m clip of a real photo panning, for Chromium's fake camera."""
    photo = np.asarray(Image.open(PHOTOS / "kodim05.jpg").convert("RGB").resize((800, 533)))
    with av.open(str(path), "w", format="yuv4mpegpipe") as out:
        stream = out.add_stream("rawvideo", rate=15)
        stream.width, stream.height, stream.pix_fmt = 640, 480, "yuv420p"
        for i in range(frames):
            crop = np.ascontiguousarray(photo[20: 500, 10 * i: 10 * i + 640])
            out.mux(stream.encode(av.VideoFrame.from_ndarray(crop, format="rgb24")))
        out.mux(stream.encode(None))
    return path


def open_page(p, url: str, camera: Path):
    """Headless Chromium (Debian's) on the page at ``url``, its fake camera playing ``camera``; the page once ready."""
    browser = p.chromium.launch(executable_path=CHROMIUM, args=[
        "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run", "--use-fake-device-for-media-stream",
        "--use-fake-ui-for-media-stream", f"--use-file-for-fake-video-capture={camera}"])
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(url)
    page.wait_for_selector("body[data-ready=true]", timeout=30_000)
    return page


@pytest.fixture(scope="module")
def driver():
    """Playwright, once per module: its sync API runs one at a time."""
    with playwright.sync_playwright() as p:
        yield p


@pytest.fixture(scope="module")
def page(tmp_path_factory, served, driver):
    clip = camera_clip(tmp_path_factory.mktemp("camera") / "camera.y4m")
    page = open_page(driver, served.url, clip)
    yield page
    page.context.browser.close()


def screenshot(page, name: str) -> None:
    folder = os.environ.get("STST_SCREENSHOTS")
    if folder:
        page.screenshot(path=str(Path(folder) / name), full_page=True)


def test_a_dropped_photo_fills_the_grid_and_shows_the_chosen_style(page):
    photo = PHOTOS / "kodim23.jpg"
    page.evaluate("""([data, name]) => {
        const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
        const files = new DataTransfer();
        files.items.add(new File([bytes], name, { type: "image/jpeg" }));
        document.getElementById("drop").dispatchEvent(new DragEvent("drop", { dataTransfer: files, bubbles: true }));
    }""", [base64.b64encode(photo.read_bytes()).decode(), photo.name])
    page.wait_for_function("document.getElementById('after').naturalWidth === 384", timeout=60_000)
    cards = page.locator(".card").count()
    assert cards == len(page.evaluate("fetch('/api/models').then((r) => r.json()).then((c) => c.models)"))
    page.wait_for_function(f"document.querySelectorAll('.card[data-state=done]').length === {cards}", timeout=120_000)
    assert page.evaluate("[...document.querySelectorAll('.card img')].every((i) => i.naturalWidth === 320)")
    assert page.locator("#download").get_attribute("download") == "kodim23-starry_night.png"
    assert page.locator("#message").is_hidden()
    screenshot(page, "serve-photo.png")


def test_an_iphone_heic_that_the_browser_cannot_decode_is_shown_as_the_server_reads_it(page):
    assert not page.evaluate("""(data) => createImageBitmap(new Blob([Uint8Array.from(atob(data), (c) =>
        c.charCodeAt(0))])).then(() => true, () => false)""", base64.b64encode(HEIF.read_bytes()).decode())
    drop_file(page, "drop", HEIF)
    page.wait_for_function("document.getElementById('before').naturalHeight === 384", timeout=60_000)
    assert page.evaluate("document.getElementById('before').naturalWidth") == 256  # upright
    page.wait_for_function("document.getElementById('after').naturalWidth === 256", timeout=60_000)
    assert page.locator("#download").get_attribute("download") == "kodim23-orientation6-starry_night.png"
    page.wait_for_function("document.querySelector('.card[data-state=done]')", timeout=60_000)
    assert page.locator("#message").is_hidden()


def test_the_live_view_shows_stylized_camera_frames_and_their_rate(page):
    page.click("button[data-tab=live]")
    page.click("#live-start")
    page.wait_for_function("/^[0-9.]+ frames\\/s$/.test(document.getElementById('fps').textContent)", timeout=60_000)
    assert float(page.locator("#fps").text_content().split()[0]) > 0
    assert page.locator("#live-tier").input_value() == "realtime"  # the fastest tier by default
    size, spread = page.evaluate("""() => {
        const canvas = document.getElementById("live-out");
        const data = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
        let low = 255, high = 0;
        for (let i = 0; i < data.length; i += 4) { low = Math.min(low, data[i]); high = Math.max(high, data[i]); }
        return [[canvas.width, canvas.height], high - low];
    }""")
    assert size == [640, 480] and spread > 50  # a real picture, not a blank canvas
    screenshot(page, "serve-live.png")


def test_a_clip_uploads_shows_its_progress_and_can_be_downloaded(page, tmp_path):
    clip = make_clip(tmp_path / "holiday.mp4", frames=12, size=(64, 48))
    page.click("button[data-tab=clip]")
    page.select_option("#clip-style", "udnie")
    page.select_option("#clip-tier", "realtime")
    page.set_input_files("#clip-input", str(clip))
    page.click("#clip-form button[type=submit]")
    page.wait_for_selector("#clip-download:not([hidden])", timeout=120_000)
    assert page.locator("#clip-status").text_content() == "done: 12 frames"
    assert page.locator("#clip-progress").evaluate("(p) => [p.value, p.max]") == [12, 12]
    assert page.locator("#clip-download").get_attribute("download") == "holiday-udnie-realtime.mp4"
    with page.expect_download() as download:
        page.click("#clip-download")
    with av.open(download.value.path()) as video:
        assert sum(1 for _ in video.decode(video=0)) == 12


def drop_file(page, target: str, path: Path) -> None:
    page.evaluate("""([target, data, name]) => {
        const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
        const files = new DataTransfer();
        files.items.add(new File([bytes], name, { type: "image/jpeg" }));
        document.getElementById(target).dispatchEvent(new DragEvent("drop", { dataTransfer: files, bubbles: true }));
    }""", [target, base64.b64encode(path.read_bytes()).decode(), path.name])


def test_a_dropped_painting_trains_with_a_preview_and_joins_the_grid(page, served):
    page.click(".tab[data-tab=photo]")
    drop_file(page, "drop", PHOTOS / "kodim23.jpg")
    page.wait_for_function("document.getElementById('after').naturalWidth === 384", timeout=60_000)
    page.fill("#style-minutes", "0.05")
    drop_file(page, "painting-drop", STYLES / "starry_night.jpg")
    page.wait_for_function("document.getElementById('style-status').textContent.includes('done')", timeout=120_000)
    assert page.locator("#style-status").text_content() == "starry_night-2: done, it is in the grid"
    assert page.evaluate("document.getElementById('style-preview').naturalWidth") == 384
    assert page.locator("#style-notes").is_hidden()  # a painting of full size: nothing to say (test_serve: a thumbnail)
    page.wait_for_function("document.querySelector('.card[data-model=\"starry_night-2\"][data-state=done]')",
                           timeout=60_000)
    assert page.locator("#chosen-name").text_content() == "starry night-2"
    assert page.locator("#message").is_hidden()
    screenshot(page, "serve-new-style.png")
    assert [p.name for p in served.models.iterdir()] == ["starry_night-2.pth"]
    # it mixes with every style of its network: a mix is made like a new style, and joins the grid
    assert "shipwreck" in page.eval_on_selector_all("#mix-style option", "(o) => o.map((x) => x.value)")
    page.select_option("#mix-style", "shipwreck")
    page.evaluate("() => { const m = document.getElementById('mix'); m.value = '0.25'; "
                  "m.dispatchEvent(new Event('input')); }")
    assert page.locator("#mix-value").text_content() == "0.25"
    page.fill("#mix-minutes", "0.05")
    page.click("#mix-make")
    page.wait_for_function("document.getElementById('style-status').textContent.includes('starry_night-275+shipwreck25"
                           ": done')", timeout=120_000)
    page.wait_for_function("document.querySelector('.card[data-model=\"starry_night-275+shipwreck25\"][data-state=done]')",
                           timeout=60_000)
    assert page.locator("#chosen-name").text_content() == "starry night-275+shipwreck25"
    assert page.locator("#message").is_hidden()


def test_off_this_machine_the_printed_address_opens_the_page_which_waits_out_a_busy_server(tmp_path, driver):
    """The token's address in Chromium: the page and its API calls carry the token (the live socket's cookie is
    tested in test_serve_access); a 503 while another client holds the model (--queue 0) shows "busy, retrying"
    and the picture comes later."""
    import io
    import re
    import subprocess
    import sys
    from concurrent.futures import ThreadPoolExecutor

    import httpx2 as httpx

    with (tmp_path / "server.log").open("w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "stst", "serve", "--host", "0.0.0.0", "--port", "0",
                                 "--queue", "0", "--precision", "fp32", "--backend", "torch"],
                                stdout=subprocess.PIPE, stderr=log, text=True)
    try:
        proc.stdout.readline()
        url = re.search(r"on this machine: (\S+)", proc.stdout.readline()).group(1)
        bare, token = url.split("?token=")
        big = io.BytesIO()
        Image.open(PHOTOS / "kodim05.jpg").resize((1400, 933)).save(big, "JPEG")
        with ThreadPoolExecutor(1) as pool, httpx.Client(timeout=300, headers={"Authorization": f"Bearer {token}"}) as http:
            def hold():
                return http.post(bare + "api/stylize", files={"image": ("big.jpg", big.getvalue())})

            held = pool.submit(hold)
            while http.post(bare + "api/stylize", files={"image": ("p.jpg", (PHOTOS / "kodim23.jpg").read_bytes())},
                            data={"max_size": "16"}).status_code != 503:  # until the big photo holds the model
                if held.done():  # the small one came first: the big one was refused, and goes again
                    held = pool.submit(hold)
            page = open_page(driver, url, camera_clip(tmp_path / "camera.y4m"))
            try:
                assert page.url == bare  # the token is kept in a cookie, out of the address bar
                drop_file(page, "drop", PHOTOS / "kodim23.jpg")
                page.wait_for_function("document.getElementById('message').textContent.startsWith("
                                       "'busy, retrying in')", timeout=30_000)
                assert held.result().status_code == 200
                page.wait_for_function("document.getElementById('after').naturalWidth === 384", timeout=60_000)
                assert page.locator("#message").is_hidden()
            finally:
                page.context.browser.close()
    finally:
        proc.terminate()
        proc.wait(30)
    assert "POST /api/stylize 503: busy: 0 waiting for starry_night already (--queue 0)" in (tmp_path / "server.log").read_text()
