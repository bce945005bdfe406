"""``stst serve`` against other web sites and under load: the Host allow-list, the Origin check, the token off
this machine, and the bounded queue (503 with Retry-After, memory that does not grow with the queue)."""

import io
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx2 as httpx
import pytest
import torch
from PIL import Image
from starlette.testclient import TestClient, WebSocketDenialResponse

from stst.base.devices import resolve_device
from stst.model.bundled import resolve_model
from stst.serve.app import ServeConfig, create_app
from stst.serve.workers import ModelWorkers
from stst.serve.fields import ApiError
from stst.serve.guard import Access, is_loopback

from conftest import PHOTOS, STYLES, make_clip, start_serve

PHOTO = PHOTOS / "kodim23.jpg"  # 384x256
ROUTES = [("GET", "/"), ("GET", "/static/app.js"), ("GET", "/api/models"), ("POST", "/api/stylize"),
          ("POST", "/api/clips"), ("GET", "/api/clips/x"), ("GET", "/api/clips/x/video"), ("POST", "/api/styles"),
          ("GET", "/api/styles/x"), ("GET", "/api/styles/x/preview")]


def local_client(access: Access = Access(), **config) -> TestClient:
    app = create_app(ServeConfig(precision="fp32", backend="torch", access=access, **config))
    return TestClient(app, base_url="http://localhost:8000")


@pytest.fixture(scope="module")
def client():
    with local_client(Access.listening("127.0.0.1", ("stst.example",))) as client:
        yield client


def stylize(client, **headers):
    return client.post("/api/stylize", files={"image": ("p.jpg", PHOTO.read_bytes())},
                       data={"tier": "realtime", "max_size": "64"}, headers=headers)


def live_refusal(client, url: str, **headers) -> int:
    """The status that refuses the live socket's handshake at ``url``; 0 when it opens."""
    try:
        with client.websocket_connect(url, headers=headers):
            return 0
    except WebSocketDenialResponse as refused:
        return refused.status_code


def test_a_foreign_host_gets_403_on_every_route_and_the_socket(client):
    for method, path in ROUTES:
        answer = client.request(method, path, headers={"Host": "evil.example:8000"})
        assert answer.status_code == 403, path
        assert answer.json() == {"error": "host 'evil.example:8000' is not served here "
                                          "(stst serve --allow-host NAME adds a name)"}
    assert live_refusal(client, "ws://evil.example:8000/api/live") == 403


@pytest.mark.parametrize("host", ["localhost:8000", "127.0.0.1:8000", "[::1]:8000", "LOCALHOST", "stst.example"])
def test_this_machines_names_and_allowed_hosts_are_served(client, host):
    assert client.get("/api/models", headers={"Host": host}).status_code == 200


def test_a_foreign_origin_cannot_post_or_open_the_socket_but_the_servers_own_can(client):
    refused = stylize(client, Origin="http://evil.example")
    assert refused.status_code == 403
    assert refused.json()["error"] == ("requests from the page at 'http://evil.example' are refused: "
                                       "only this server's own page may")
    assert stylize(client, Origin="null").status_code == 403
    assert stylize(client, Origin="http://localhost:8000").status_code == 200
    assert stylize(client, Origin="https://stst.example").status_code == 200  # an --allow-host name, behind a proxy
    assert stylize(client).status_code == 200  # no Origin: curl and scripts
    assert client.get("/api/models", headers={"Origin": "http://evil.example"}).status_code == 200  # reads: no
    assert live_refusal(client, "ws://localhost:8000/api/live", Origin="http://evil.example") == 403
    assert live_refusal(client, "ws://localhost:8000/api/live", Origin="http://localhost:8000") == 0


def test_with_a_token_every_route_needs_it_by_header_query_or_the_pages_cookie():
    with local_client(Access(hosts=None, token="s3cret")) as client:
        for method, path in ROUTES:
            answer = client.request(method, path)
            assert answer.status_code == 401, path
            assert answer.json()["error"].startswith("a token is needed: open the address with ?token= that")
        assert client.get("/api/models", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert client.get("/api/models", headers={"Authorization": "Bearer s3cret"}).status_code == 200
        assert client.get("/api/models?token=s3cret").status_code == 200
        assert live_refusal(client, "ws://localhost:8000/api/live") == 401
        opened = client.get("/?token=s3cret", follow_redirects=False)
        assert opened.status_code == 303 and opened.headers["location"] == "/"
        assert "stst_token=s3cret" in opened.headers["set-cookie"] and "HttpOnly" in opened.headers["set-cookie"]
        assert client.get("/").status_code == 200  # the cookie, from now on
        assert stylize(client).status_code == 200
        assert live_refusal(client, "ws://localhost:8000/api/live") == 0


@pytest.mark.parametrize("host, loopback", [("127.0.0.1", True), ("127.0.0.2", True), ("localhost", True),
                                            ("::1", True), ("0.0.0.0", False), ("::", False),
                                            ("192.168.1.20", False), ("myhost", False)])
def test_only_loopback_addresses_check_the_host_and_others_rely_on_the_token(host, loopback):
    assert is_loopback(host) is loopback
    access = Access.listening(host, ("Proxy.Example",), "t" if not loopback else None)
    if loopback:
        assert access.hosts >= {"localhost", "127.0.0.1", "::1", "proxy.example", host}
    else:
        assert access.hosts is None and access.token == "t"


def test_requests_beyond_the_queue_are_told_when_to_come_back():
    engines = ModelWorkers(resolve_device("cpu"), "fp32", "torch", queue=1)
    model = resolve_model("udnie")[0]
    running, release = threading.Event(), threading.Event()

    def hold(stylizer) -> None:
        running.set()
        release.wait(30)

    first = engines.submit(model, hold)
    assert running.wait(30)
    second = engines.submit(model, lambda stylizer: "waited")  # the queue holds one
    with pytest.raises(ApiError) as refused:
        engines.submit(model, lambda stylizer: None)
    assert second.cancel()  # its client went away while it waited: its place is free again
    third = engines.submit(model, lambda stylizer: "waited")
    clip = engines.submit(model, lambda stylizer: "clip", limited=False)  # a clip's batch is never refused
    release.set()
    assert (first.result(30), third.result(30), clip.result(30)) == (None, "waited", "clip")
    assert refused.value.status == 503 and refused.value.retry_after >= 1
    assert str(refused.value).startswith("busy: 1 waiting for udnie already (--queue 1); try again in ")
    assert engines.submit(model, lambda stylizer: stylizer(torch.rand(1, 3, 32, 32)).shape).result(30) == (1, 3, 32, 32)
    engines.close()


def test_clips_and_paintings_beyond_the_queue_get_503(tmp_path):
    clip = make_clip(tmp_path / "c.mp4", frames=24, size=(160, 120)).read_bytes()
    painting = (STYLES / "the_scream.jpg").read_bytes()
    with local_client(queue=0, models=tmp_path) as client:
        server = client.app.state.server
        post_clip = lambda: client.post("/api/clips", files={"video": ("c.mp4", clip)}, data={"model": "udnie"})
        assert post_clip().status_code == 202
        answer = post_clip()  # while the first runs, with no room to wait
        assert answer.status_code == 503 and answer.headers["retry-after"] == "30"
        assert answer.json()["error"].startswith("busy: 0 waiting for the clips before it already (--queue 0)")
        assert len(list(server.clips.folder.glob("*.upload"))) <= 1  # the refused upload is not kept
        post_style = lambda: client.post("/api/styles", files={"painting": ("p.jpg", painting)},
                                         data={"minutes": "0.05"})
        assert post_style().status_code == 202
        answer = post_style()
        assert answer.status_code == 503 and answer.headers["retry-after"] == "3"


def peak_rss_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1)) / 1024


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads the server's peak memory from /proc")
def test_a_real_server_under_load_answers_each_request_with_an_image_or_503_and_bounded_memory(tmp_path):
    buffer = io.BytesIO()
    Image.open(PHOTO).resize((1800, 1200)).save(buffer, "JPEG", quality=90)  # 2.2 MP: 26 MB as float pixels
    photo = buffer.getvalue()
    server = start_serve("--precision", "fp32", "--backend", "torch", "--queue", "6", log=tmp_path / "server.log")

    def one(_: int) -> httpx.Response:
        with httpx.Client(timeout=300) as http:
            return http.post(server.url + "api/stylize", files={"image": ("big.jpg", photo)},
                             data={"model": "udnie", "tier": "realtime", "format": "jpeg"})

    try:
        assert [one(0).status_code, one(1).status_code] == [200, 200]  # the engine built, one photo's peak reached
        before = peak_rss_mb(server.pid)
        with ThreadPoolExecutor(12) as pool:
            answers = list(pool.map(one, range(12)))
        after = peak_rss_mb(server.pid)
    finally:
        server.terminate()
        server.wait(30)
    statuses = sorted(a.status_code for a in answers)
    assert set(statuses) == {200, 503} and statuses.count(200) >= 7, statuses
    for answer in answers:
        if answer.status_code == 503:
            assert int(answer.headers["retry-after"]) >= 1 and answer.json()["error"].startswith("busy: 6 waiting")
        else:
            assert Image.open(io.BytesIO(answer.content)).size == (1800, 1200)
    # seven photos admitted at once, decoded one at a time, add less than their pixels would (7 x 33 MB)
    assert after - before < 150, (before, after)


def test_a_stop_drops_the_waiting_requests_and_does_not_wait_for_them(tmp_path):
    buffer = io.BytesIO()
    Image.open(PHOTO).resize((2100, 1400)).save(buffer, "JPEG", quality=90)  # 2-3 s in the realtime tier here
    server = start_serve("--precision", "fp32", "--backend", "torch", log=tmp_path / "server.log")

    def one(_: int) -> int:
        try:
            with httpx.Client(timeout=120) as http:
                return http.post(server.url + "api/stylize", files={"image": ("big.jpg", buffer.getvalue())},
                                 data={"tier": "realtime", "format": "jpeg"}).status_code
        except httpx.HTTPError:
            return 0  # the server went away: no answer

    with ThreadPoolExecutor(5) as pool:
        running = pool.submit(one, 0)
        time.sleep(0.5)
        waiting = [pool.submit(one, i) for i in range(1, 5)]
        time.sleep(0.5)
        start = time.perf_counter()
        server.terminate()
        server.wait(60)
        stopped = time.perf_counter() - start
        answers = [running.result(), *(w.result() for w in waiting)]
    assert server.returncode == 0 and stopped < 10, (stopped, answers)  # the photo running, not all five
    assert answers == [200, 503, 503, 503, 503], answers
