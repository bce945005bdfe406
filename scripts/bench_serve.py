"""Benchmark `stst serve`: a photo through POST /api/stylize against the command line's per-photo path, and the
live view's frames per second for each tier, over the WebSocket and in a real browser.

    python scripts/bench_serve.py                       # ../shared/data/photos/kodim05.png (768x512)
    python scripts/bench_serve.py --repeats 9 --skip-browser

Per photo (warm, median of --repeats, rows alternated): the command line's path
for one photo in-process (read, stylize, write a PNG: `run_jobs`, as `stst
stylize photo -o out.png` does after start-up) against `POST /api/stylize` to a
real server on loopback (upload, decode, stylize, encode, answer), for the same
model and engine: pinned (`--precision fp32 --backend torch`) and as chosen by
`auto` (both read the same engine choice in $STST_HOME).

Live: 640x480 JPEG frames sent over `WS /api/live` with two on their way (as the
page does) for --seconds, per tier; then the page itself in headless Chromium
(Debian's, via Playwright) with a fake camera at 640x480, and the frames per
second it shows after --seconds.

Load (--load N): N clients at once each upload one 12 MP JPEG (the photo scaled
to 4000x3000) for the default model, against a server with each --queue given;
the answers (images, 503s), the seconds until the last answer, the Retry-After
values, and the server's peak memory (VmHWM) before and after.

    python scripts/bench_serve.py --load 16 --queue 4 --skip-photo --skip-live
    python scripts/bench_serve.py --load 16 --queue 16 --tier realtime --skip-photo --skip-live
"""

from __future__ import annotations

import argparse
import io
import json
import re
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx2 as httpx
import torch
from PIL import Image
from websockets.sync.client import connect

from stst.base.machine import describe_cpu
from stst.base.devices import resolve_device
from stst.infer.engine import open_stylizer
from stst.model.bundled import DEFAULT_MODEL, resolve_model
from stst.stylize import Job, JobSettings, run_jobs

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from conftest import start_serve  # noqa: E402  (the tests' server starter and browser, shared with them)

PHOTO = ROOT.parent / "shared" / "data" / "photos" / "kodim05.png"
ENGINES = {"fp32 torch": ("fp32", "torch"), "auto": ("auto", "auto")}


def photo_rows(photo: Path, repeats: int, scratch: Path) -> None:
    print(f"\nOne photo, {Image.open(photo).size[0]}x{Image.open(photo).size[1]}, {DEFAULT_MODEL} (full), warm, "
          f"median seconds of {repeats}")
    print("| engine | command line (in-process) | POST /api/stylize | ratio |")
    print("|---|---|---|---|")
    data = photo.read_bytes()
    for label, (precision, backend) in ENGINES.items():
        stylizer = open_stylizer(resolve_model(None)[0], resolve_device("cpu"), precision, "auto", False, backend)
        job = [Job(photo, scratch / "cli.png", "PNG")]
        server = start_serve("--precision", precision, "--backend", backend, log=scratch / "server.log")
        try:
            with httpx.Client(timeout=300) as http:
                def cli() -> float:
                    start = time.perf_counter()
                    assert run_jobs(stylizer, job, JobSettings(overwrite=True), progress=False).stylized
                    return time.perf_counter() - start

                def api() -> float:
                    start = time.perf_counter()
                    answer = http.post(server.url + "api/stylize", files={"image": (photo.name, data)})
                    assert answer.status_code == 200, answer.text
                    return time.perf_counter() - start

                for _ in range(2):  # warm-up: the engine choice, the first runs
                    cli(), api()
                times = {"cli": [], "api": []}
                for _ in range(repeats):
                    times["cli"].append(cli())
                    times["api"].append(api())
        finally:
            server.terminate()
            server.wait()
        c, a = statistics.median(times["cli"]), statistics.median(times["api"])
        print(f"| {label} | {c:.3f} | {a:.3f} | {a / c:.2f}x |", flush=True)


def frames_640x480(photo: Path) -> bytes:
    buffer = io.BytesIO()
    Image.open(photo).convert("RGB").resize((720, 480)).crop((40, 0, 680, 480)).save(buffer, "JPEG", quality=85)
    return buffer.getvalue()


def live_socket(url: str, frame: bytes, tier: str, seconds: float) -> tuple[float, float]:
    """Frames per second answered with two frames on their way, and the server's median ms a frame."""
    with connect(url.replace("http://", "ws://") + "api/live", max_size=None) as ws:
        ws.send(f'{{"tier": "{tier}"}}')
        answered, ms, start, sent = 0, [], None, 0
        for _ in range(2):
            ws.send(frame)
            sent += 1
        while start is None or time.perf_counter() - start < seconds:
            message = ws.recv()
            if isinstance(message, str):
                ms.append(json.loads(message).get("ms", 0))
                continue
            answered += 1
            if answered == 3:  # the first frames warm up the engine
                start, counted = time.perf_counter(), 0
            elif start is not None:
                counted += 1
            ws.send(frame)
        return counted / (time.perf_counter() - start), statistics.median(ms[3:])


def live_rows(photo: Path, seconds: float, scratch: Path, browser: bool) -> None:
    server = start_serve(log=scratch / "live.log")
    try:
        print(f"\nLive view, 640x480 frames, {DEFAULT_MODEL}, engine auto, {seconds:g} s per tier")
        print("| tier | WebSocket frames/s | server ms a frame | browser frames/s |")
        print("|---|---|---|---|")
        frame = frames_640x480(photo)
        # the sockets first: their first frames are left out of the count, and on a fresh machine they are the
        # ones that wait for the engines' timing, which the page's count would take in
        socket = {tier: live_socket(server.url, frame, tier, seconds) for tier in ("full", "light", "realtime")}
        shown = browser_fps(server.url, scratch, seconds) if browser else {}
        for tier, (fps, ms) in socket.items():
            print(f"| {tier} | {fps:.1f} | {ms:.0f} | {shown.get(tier, '–')} |", flush=True)
    finally:
        server.terminate()
        server.wait()


def browser_fps(url: str, scratch: Path, seconds: float) -> dict[str, str]:
    """The frames per second the page shows for each tier, with a fake 640x480 camera."""
    from playwright.sync_api import sync_playwright
    from test_browser import camera_clip, open_page

    camera = camera_clip(scratch / "camera.y4m", frames=30)
    shown = {}
    with sync_playwright() as p:
        page = open_page(p, url, camera)
        for tier in ("full", "light", "realtime"):
            page.goto(url)
            page.wait_for_selector("body[data-ready=true]")
            page.click("button[data-tab=live]")
            page.select_option("#live-tier", tier)
            page.click("#live-start")
            time.sleep(seconds)
            shown[tier] = page.locator("#fps").text_content().split()[0]
        page.context.browser.close()
    return shown


def peak_mb(pid: int) -> float:
    return int(re.search(r"VmHWM:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text()).group(1)) / 1024


def load_rows(photo: Path, clients: int, queues: list[int], tier: str, scratch: Path, auto: bool = False) -> None:
    big = io.BytesIO()
    Image.open(photo).convert("RGB").resize((4000, 3000), Image.BICUBIC).save(big, "JPEG", quality=90)
    data = big.getvalue()
    engine = [] if auto else ["--precision", "fp32", "--backend", "torch"]
    print(f"\nLoad: {clients} clients at once, one 4000x3000 JPEG each ({len(data) / 1e6:.1f} MB), {DEFAULT_MODEL} "
          f"({tier}), {'the engines auto picks here' if auto else 'fp32 torch'}")
    print("| --queue | images | 503 (Retry-After s) | seconds to the last answer | peak memory idle → under load |")
    print("|---|---|---|---|---|")
    for queue in queues:
        server = start_serve(*engine, "--queue", str(queue),
                             log=scratch / "load.log")
        try:
            def one(_: int) -> httpx.Response:
                with httpx.Client(timeout=3600) as http:
                    return http.post(server.url + "api/stylize", files={"image": ("big.jpg", data)},
                                     data={"format": "jpeg", "tier": tier})

            with httpx.Client(timeout=300) as http:  # the engine built on a small photo
                assert http.post(server.url + "api/stylize", files={"image": (photo.name, photo.read_bytes())},
                                 data={"format": "jpeg", "tier": tier}).status_code == 200
            idle = peak_mb(server.pid)
            start = time.perf_counter()
            with ThreadPoolExecutor(clients) as pool:
                answers = list(pool.map(one, range(clients)))
            seconds, loaded = time.perf_counter() - start, peak_mb(server.pid)
        finally:
            server.terminate()
            server.wait()
        codes = [a.status_code for a in answers]
        retry = sorted({a.headers.get("retry-after") for a in answers if a.status_code == 503})
        print(f"| {queue} | {codes.count(200)} | {codes.count(503)} ({', '.join(retry) or '–'}) | {seconds:.0f} | "
              f"{idle:.0f} MB → {loaded:.0f} MB |", flush=True)
        assert set(codes) <= {200, 503}, codes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photo", type=Path, default=PHOTO)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--skip-photo", action="store_true")
    parser.add_argument("--skip-browser", action="store_true")
    parser.add_argument("--skip-live", action="store_true")
    parser.add_argument("--load", type=int, default=0, metavar="N", help="N concurrent 12 MP uploads (0: none)")
    parser.add_argument("--queue", type=int, action="append", help="stst serve --queue for the load rows")
    parser.add_argument("--tier", default="full", help="the tier the load rows ask for")
    parser.add_argument("--auto", action="store_true", help="the load rows on the engines auto picks, not fp32 torch")
    args = parser.parse_args()
    print(f"{describe_cpu()}; torch {torch.__version__}, {torch.get_num_threads()} threads")
    with tempfile.TemporaryDirectory() as scratch:
        if not args.skip_photo:
            photo_rows(args.photo, args.repeats, Path(scratch))
        if not args.skip_live:
            live_rows(args.photo, args.seconds, Path(scratch), not args.skip_browser)
        if args.load:
            load_rows(args.photo, args.load, args.queue or [4], args.tier, Path(scratch), args.auto)


if __name__ == "__main__":
    main()
