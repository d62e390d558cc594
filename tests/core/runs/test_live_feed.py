"""core.runs.live_feed and its HTTP route: one shared view per watched run, built once per new data,
answered to every watcher (issue 17 item 5: a live chart is built once per tick and shared)."""
import base64
import gzip
import json

import numpy as np
import pytest
from starlette.requests import Request

from core.i18n import CATALOGUE
from core.runs.live_feed import FeedError, FeedRequest, LiveFeed, page_signature
from core.runs.store import SQLiteRunStore
from core.training.config import recipe
from pages.ui import live_http


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def lab(tmp_path):
    store = SQLiteRunStore(tmp_path)
    config = recipe("r3").to_dict()
    run = store.create_run(config, name="ada *bold*", status="running", kind="job")
    store.update_run(run, started=1.0)
    yield store, run
    store.close()


def xs(traces) -> list[float]:
    """The x values of plotly JSON traces: lists, or plotly's typed arrays ({"dtype", "bdata"} base64)."""
    out = []
    for trace in traces:
        x = trace["x"]
        out += np.frombuffer(base64.b64decode(x["bdata"]), dtype=x["dtype"]).tolist() if isinstance(x, dict) else x
    return out


def write(store, run, steps):
    store.log_metrics(run, [(s, 1, "loss", 2.0 / s) for s in steps] + [(s, 1, "lr", 1e-3) for s in steps])
    store.heartbeat(run, epoch=1, step=max(steps))


def test_requests_are_validated():
    ok = FeedRequest.parse("abc123,def456", "zh", "0.5")
    assert ok.run_ids == ("abc123", "def456") and ok.lang == "zh" and ok.smooth == 0.5
    for runs, lang, smooth in (("", "en", 0.6), ("a,b,c", "en", 0.6), ("../etc", "en", 0.6), ("abc", "xx", 0.6),
                               ("abc", "en", "nan"), ("abc", "en", "1.5"), ("abc", "en", "-0.1"), ("abc", "en", "x")):
        with pytest.raises(FeedError):
            FeedRequest.parse(runs, lang, smooth)


def test_many_watchers_cost_one_build_per_new_data(lab):
    store, run = lab
    clock, ticks = Clock(), []
    feed = LiveFeed(store, tick=lambda: ticks.append(1), clock=clock, min_interval=0.5)
    request = FeedRequest.parse(run, "en", 0.6)
    write(store, run, range(1, 11))
    bodies = {feed.payload(request) for _ in range(50)}  # 50 watchers in the same half second
    assert len(bodies) == 1 and feed.builds == 1 and feed.looks == 1 and len(ticks) == 1
    first = json.loads(next(iter(bodies)))
    assert first["active"] and first["charts"] is not None and set(first["charts"]) == {"loss", "acc", "lr", "speed"}
    assert "template" not in first["charts"]["loss"]["layout"]  # the page themes the charts itself
    loss = first["charts"]["loss"]["data"]
    assert max(xs(loss)) == 10
    line = first["runs"][0]
    assert line["id"] == run and "ada *bold*" in line["text"] and "step 10 of" in line["text"]
    # A watcher that is up to date gets a few bytes, not the charts again.
    same = json.loads(feed.payload(request, known=first["v"]))
    assert same == {"v": first["v"], "same": True}

    clock.now += 0.6  # a look later, nothing new: the store is asked, nothing is built
    assert json.loads(feed.payload(request, known=first["v"]))["same"] and feed.looks == 2 and feed.builds == 1
    write(store, run, range(11, 16))
    assert json.loads(feed.payload(request, known=first["v"]))["same"]  # within min_interval: not looked yet
    clock.now += 0.6
    second = json.loads(feed.payload(request, known=first["v"]))
    assert second["v"] != first["v"] and feed.builds == 2 and "step 15 of" in second["runs"][0]["text"]
    assert max(xs(second["charts"]["loss"]["data"])) == 15


def test_the_view_is_in_the_requested_language_and_waits_for_data(lab):
    store, run = lab
    feed = LiveFeed(store)
    zh = feed.view(FeedRequest.parse(run, "zh"))
    assert zh.figures is None and zh.waiting == CATALOGUE["zh"]["train.waiting"]
    assert CATALOGUE["zh"]["status.running"] in zh.lines[0].text


def test_the_page_signature_follows_status_and_checkpoints(lab):
    store, run = lab
    before = page_signature(store, [store.get_run(run)])
    (store.run_dir(run)).mkdir(parents=True, exist_ok=True)
    (store.run_dir(run) / "last.pt").write_bytes(b"x")
    with_last = page_signature(store, [store.get_run(run)])
    store.finish_run(run, "completed")
    done = page_signature(store, [store.get_run(run)])
    assert len({before, with_last, done}) == 3


def test_a_finished_run_stops_the_polling(lab):
    store, run = lab
    write(store, run, [1, 2])
    store.finish_run(run, "stopped")
    body = json.loads(LiveFeed(store).payload(FeedRequest.parse(run)))
    assert body["active"] is False and body["runs"][0]["status"] == "stopped"


def _get(query: str):
    response = live_http.feed(Request({"type": "http", "method": "GET", "path": "/lab-live/feed",
                                       "query_string": query.encode(), "headers": []}))
    return response.status_code, json.loads(response.body)


def test_the_route_answers_bad_requests_with_a_reason(lab):
    store, run = lab
    key = live_http.lab_key(str(store.home), "")
    live_http.register(key, LiveFeed(store))
    assert _get(f"lab={key}&runs={run}")[0] == 200
    status, body = _get(f"lab={key}&runs=../../etc/passwd")
    assert status == 400 and body["error"].startswith("runs:")
    status, body = _get(f"lab={key}&runs={run}&smooth=inf")
    assert status == 400 and "smooth" in body["error"]
    assert _get(f"lab=nope&runs={run}")[0] == 404
    status, body = _get(f"lab={key}&runs=abcdef")  # a run that does not exist: an empty view, not an error
    assert status == 200 and body["runs"] == [] and not body["active"]


def test_a_diverged_loss_is_null_in_the_json(lab):
    store, run = lab
    store.log_metrics(run, [(1, 1, "loss", 2.0), (2, 1, "loss", float("nan")), (3, 1, "loss", float("inf"))])
    store.heartbeat(run, epoch=1, step=3)
    body = LiveFeed(store).payload(FeedRequest.parse(run, "en", "0"))
    assert b"NaN" not in body and b"Infinity" not in body
    loss = json.loads(body)["charts"]["loss"]["data"][0]
    assert loss["y"] == [2.0, None, None] and xs([loss]) == [1, 2, 3]


def _raw(query: str, accept: str = ""):
    headers = [(b"accept-encoding", accept.encode())] if accept else []
    return live_http.feed(Request({"type": "http", "method": "GET", "path": "/lab-live/feed",
                                   "query_string": query.encode(), "headers": headers}))


def test_a_browser_that_accepts_gzip_gets_the_view_compressed_once(lab):
    store, run = lab
    write(store, run, range(1, 200))
    feed = LiveFeed(store)
    key = live_http.lab_key(str(store.home), "gz")
    live_http.register(key, feed)
    plain = _raw(f"lab={key}&runs={run}")
    packed = _raw(f"lab={key}&runs={run}", "gzip, deflate, br")
    assert "content-encoding" not in plain.headers and packed.headers["content-encoding"] == "gzip"
    assert gzip.decompress(packed.body) == plain.body and len(packed.body) < len(plain.body) / 3
    again = _raw(f"lab={key}&runs={run}", "gzip")
    assert again.body is packed.body or again.body == packed.body  # made once per view, not per answer
    version = json.loads(plain.body)["v"]
    same = _raw(f"lab={key}&runs={run}&v={version}", "gzip")
    assert json.loads(gzip.decompress(same.body)) == {"v": version, "same": True}
    js = live_http.plotly_js(Request({"type": "http", "method": "GET", "path": "/lab-live/plotly.min.js",
                                      "query_string": b"", "headers": [(b"accept-encoding", b"gzip")]}))
    assert js.headers["content-encoding"] == "gzip"
    assert gzip.decompress(js.body) == live_http.PLOTLY_JS.read_bytes()


def test_a_finished_runs_figures_are_made_once_per_view(lab):
    store, run = lab
    clock = Clock()
    feed = LiveFeed(store, clock=clock)
    request = FeedRequest.parse(run, "en", "0.6")
    assert feed.figure(request, "loss") is None  # no metric yet
    write(store, run, range(1, 6))
    store.finish_run(run, "completed")
    clock.now += 1
    first = feed.figure(request, "loss")
    assert first is feed.figure(request, "loss") and first.data[0].type == "scatter"
    assert feed.figure(request, "nope") is None
    store.log_metrics(run, [(6, 1, "loss", 0.1)])
    store.update_run(run, step=6)
    clock.now += 1
    assert feed.figure(request, "loss") is not first  # a new view: its own figure


def test_each_language_gets_its_own_compressed_view(lab):
    store, run = lab
    write(store, run, range(1, 20))
    feed = LiveFeed(store)
    en, zh = FeedRequest.parse(run, "en", "0.6"), FeedRequest.parse(run, "zh", "0.6")
    assert gzip.decompress(feed.payload(en, compressed=True)) == feed.payload(en)
    assert gzip.decompress(feed.payload(zh, compressed=True)) == feed.payload(zh) != feed.payload(en)
    assert feed.figure(en, "loss") is not feed.figure(zh, "loss")


def test_a_held_view_is_a_lookup_and_a_stale_one_is_not(lab):
    store, run = lab
    write(store, run, range(1, 20))
    clock = Clock()
    feed = LiveFeed(store, clock=clock)
    request = FeedRequest.parse(run, "en", "0.6")
    assert feed.held_payload(request) is None  # nothing built yet: a look at the store is needed
    body = feed.payload(request)
    looks = feed.looks
    assert feed.held_payload(request) == body and feed.looks == looks  # a lookup: no look, no build
    assert feed.held_payload(request, compressed=True) is None  # not compressed yet: the route makes it once
    packed = feed.payload(request, compressed=True)
    assert feed.held_payload(request, compressed=True) == packed
    version = json.loads(body)["v"]
    assert json.loads(feed.held_payload(request, known=version)) == {"v": version, "same": True}
    clock.now += feed.min_interval  # older than min_interval: the store must be looked at again
    assert feed.held_payload(request) is None and feed.looks == looks


def _asgi(app, query: str, accept: str = "gzip") -> tuple[int, dict, bytes]:
    """One GET of the feed through an ASGI app; (status, headers, body)."""
    import asyncio

    sent: list[dict] = []

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": "GET", "path": live_http.FEED_PATH, "query_string": query.encode(),
             "headers": [(b"accept-encoding", accept.encode())], "http_version": "1.1", "scheme": "http",
             "server": ("127.0.0.1", 80), "root_path": ""}
    asyncio.run(app(scope, receive, send))
    start = next(m for m in sent if m["type"] == "http.response.start")
    headers = {k.decode(): v.decode() for k, v in start["headers"]}
    return start["status"], headers, b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")


def test_the_server_answers_held_views_before_its_middleware_and_passes_the_rest_on(lab):
    store, run = lab
    write(store, run, range(1, 20))
    clock = Clock()
    feed = LiveFeed(store, clock=clock)
    key = live_http.lab_key(str(store.home), "lookups")
    live_http.register(key, feed)
    passed: list[str] = []

    async def app(scope, receive, send):  # the rest of the server: Streamlit's stack and the routes
        passed.append(scope["path"])
        await live_http.feed(Request(scope))(scope, receive, send)

    lookups = live_http.FeedLookups(app)
    status, headers, body = _asgi(lookups, f"lab={key}&runs={run}")
    assert status == 200 and passed == [live_http.FEED_PATH]  # first poll: built in the app's route
    assert headers["content-encoding"] == "gzip"
    status, headers, again = _asgi(lookups, f"lab={key}&runs={run}")
    assert status == 200 and again == body and len(passed) == 1  # a lookup: answered before the stack
    version = json.loads(gzip.decompress(body))["v"]
    status, _, same = _asgi(lookups, f"lab={key}&runs={run}&v={version}")
    assert json.loads(gzip.decompress(same)) == {"v": version, "same": True} and len(passed) == 1
    status, _, bad = _asgi(lookups, f"lab={key}&runs=../x")  # a bad request: the route says why
    assert status == 400 and json.loads(bad)["error"].startswith("runs:") and len(passed) == 2
    clock.now += feed.min_interval  # stale: the route looks at the store
    assert _asgi(lookups, f"lab={key}&runs={run}")[0] == 200 and len(passed) == 3
