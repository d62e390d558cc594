"""The lab's own HTTP routes next to Streamlit's (``st.App`` in app.py): the live-charts feed.

``GET /lab-live/feed?lab=...&runs=...&lang=...&smooth=...&v=...`` answers the live-charts component
(``pages.ui.live_view``) with the shared view of the watched runs (``core.runs.live_feed``): a watcher's
poll is a lookup of bytes built once for everyone, not a rerun of its page; while those bytes are held,
``FeedLookups`` (app.py's outermost middleware) answers it on the event loop, before Streamlit's own
middleware and without a worker thread. ``GET /lab-live/plotly.min.js``
serves the plotly.js bundle that ships inside the ``plotly`` Python package (the browser has no internet
here, and it is the same library ``st.plotly_chart`` draws with).

No Streamlit calls here (these run on the server's threads, outside any session): the pages register
their ``LiveFeed`` with ``register`` when they first show the component.
"""
from __future__ import annotations

import hashlib
import logging
import threading
from pathlib import Path
from typing import TYPE_CHECKING

import plotly
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

if TYPE_CHECKING:  # imported when a request comes: the server starts without torch (the engine's import)
    from core.runs.live_feed import FeedRequest, LiveFeed

PREFIX = "/lab-live"
FEED_PATH = f"{PREFIX}/feed"
PLOTLY_JS = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
_LOG = logging.getLogger(__name__)
_FEEDS: dict[str, LiveFeed] = {}
_LOCK = threading.Lock()


def lab_key(home: str, url: str) -> str:
    """A short name for one lab (its home and store URL) in the feed's URL: no path leaks into the page."""
    return hashlib.sha1(f"{home}\n{url}".encode()).hexdigest()[:12]


def register(key: str, feed: LiveFeed) -> None:
    """Serve ``feed`` under ``key`` from now on (one per lab home and store URL in this process)."""
    with _LOCK:
        _FEEDS[key] = feed


def feed(request: Request) -> Response:
    """The watched runs' view as JSON; a plain reason with status 400 for a bad request, 404 for an
    unknown lab, 503 when the store does not answer."""
    asked = _asked(request)
    if isinstance(asked, Response):
        return asked
    lab, wanted = asked
    compressed = _accepts_gzip(request)
    try:
        body = lab.payload(wanted, request.query_params.get("v", "")[:32], compressed=compressed)
    except Exception as exc:  # noqa: BLE001 - a store that does not answer now: the page says so and retries
        _LOG.warning("live feed: %s", exc)
        return JSONResponse({"error": f"the run store did not answer: {type(exc).__name__}"}, status_code=503)
    return _answer(body, compressed)


def _asked(request: Request) -> tuple[LiveFeed, FeedRequest] | Response:
    """The lab and the validated request a feed poll names, or the answer to a poll that names neither."""
    q = request.query_params
    lab = _FEEDS.get(q.get("lab", ""))
    if lab is None:
        return JSONResponse({"error": "unknown lab: open the page again"}, status_code=404)
    from core.runs.live_feed import FeedError, FeedRequest

    try:
        return lab, FeedRequest.parse(q.get("runs", ""), q.get("lang", "en"), q.get("smooth", "0.6"))
    except FeedError as exc:
        return JSONResponse({"error": str(exc)}, status_code=400)


def _accepts_gzip(request: Request) -> bool:
    return "gzip" in request.headers.get("accept-encoding", "").lower()


class FeedLookups:
    """ASGI middleware (the outermost, ``st.App(middleware=...)``): a feed poll whose answer is held (a view
    younger than the feed's ``min_interval``) is answered here, on the event loop, from the bytes built for
    every watcher. Most polls are such lookups; going through Streamlit's middleware stack and a hop to a
    worker thread cost each of them more than the lookup itself. Everything else (a poll that needs a
    look at the store, a bad request, every other path) goes on to the app unchanged."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == FEED_PATH and scope["method"] == "GET":
            response = held_answer(Request(scope))
            if response is not None:
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def held_answer(request: Request) -> Response | None:
    """The feed's answer to ``request`` when it is a lookup of held bytes, else None (``feed`` answers)."""
    asked = _asked(request)
    if isinstance(asked, Response):
        return None
    lab, wanted = asked
    compressed = _accepts_gzip(request)
    body = lab.held_payload(wanted, request.query_params.get("v", "")[:32], compressed=compressed)
    return None if body is None else _answer(body, compressed)


def _answer(body: bytes, compressed: bool) -> Response:
    headers = {"Cache-Control": "no-store", "Vary": "Accept-Encoding"}
    if compressed:  # compressed once per view for everyone; the server's gzip middleware leaves it as it is
        headers["Content-Encoding"] = "gzip"
    return Response(body, media_type="application/json", headers=headers)


_PLOTLY_GZ: list[bytes] = []  # plotly.min.js compressed once per process (Streamlit's middleware would on each load)


def plotly_js(request: Request) -> Response:
    headers = {"Cache-Control": "public, max-age=86400", "Vary": "Accept-Encoding"}
    if not _accepts_gzip(request):
        return FileResponse(PLOTLY_JS, media_type="text/javascript", headers=headers)
    with _LOCK:
        if not _PLOTLY_GZ:
            from core.runs.live_feed import gzip_bytes  # (a page has loaded the engine by now)

            _PLOTLY_GZ.append(gzip_bytes(PLOTLY_JS.read_bytes()))
    return Response(_PLOTLY_GZ[0], media_type="text/javascript", headers={**headers, "Content-Encoding": "gzip"})


# Plain (not async) endpoints: Starlette runs them on its thread pool, off the event loop that carries
# every session's websocket.
ROUTES = [Route(FEED_PATH, feed, methods=["GET"]),
          Route(f"{PREFIX}/plotly.min.js", plotly_js, methods=["GET"])]
