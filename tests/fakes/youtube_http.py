"""A real HTTP server on 127.0.0.1 standing in for YouTube's hosts in tests.

yt-dlp really connects to it, so the whole request path (opener, cookies, retries, error
wrapping) runs as in production; only the far end is ours. Routes answer with a fixed
status/body, optionally only for the first N requests (to fail a download after a good
extraction), and every request is logged with its headers.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Route:
    status: int = 200
    body: bytes = b""
    content_type: str = "application/octet-stream"
    headers: dict[str, str] = field(default_factory=dict)
    # After `times` answers, answer `then_status` (None: keep answering the same).
    times: int | None = None
    then_status: int = 403


@dataclass
class SeenRequest:
    method: str
    path: str
    headers: dict[str, str]


class FakeYouTube:
    """`with FakeYouTube() as yt: yt.route("/a.wav", Route(body=...)); yt.url("/a.wav")`."""

    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self.served: dict[str, int] = {}
        self.requests: list[SeenRequest] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

        self._port = self._server.server_port
        self.up = True

    def __enter__(self) -> "FakeYouTube":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        if self.up:
            self.go_down()

    def go_down(self) -> None:
        """An outage: stop listening, so every connection is refused (what yt-dlp sees when YouTube is unreachable)."""
        self._server.shutdown()
        self._server.server_close()
        self.up = False

    def come_back(self) -> None:
        """Listen again on the same port: the outage is over."""
        self._server = ThreadingHTTPServer(("127.0.0.1", self._port), self._handler())
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        self.up = True

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._port}"

    def url(self, path: str) -> str:
        return self.base_url + path

    def route(self, path: str, route: Route) -> str:
        """Serve `route` at `path` (query string included, if any); returns the full URL."""
        self.routes[path] = route
        return self.url(path)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self, with_body: bool) -> None:
                with fake._lock:
                    fake.requests.append(SeenRequest(self.command, self.path, dict(self.headers)))
                    route = fake.routes.get(self.path) or fake.routes.get(self.path.split("?")[0])
                    count = fake.served.get(self.path, 0)
                    fake.served[self.path] = count + 1
                if route is None:
                    status, body, ctype, extra = 404, b"not found", "text/plain", {}
                elif route.times is not None and count >= route.times:
                    status, body, ctype, extra = route.then_status, b"refused", "text/plain", {}
                else:
                    status, body, ctype, extra = route.status, route.body, route.content_type, route.headers
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                for name, value in extra.items():
                    self.send_header(name, value)
                self.end_headers()
                if with_body:
                    self.wfile.write(body)

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                self._answer(True)

            def do_HEAD(self) -> None:  # noqa: N802
                self._answer(False)

            def log_message(self, *args) -> None:  # keep test output clean
                pass

        return Handler


ATOM_FEED = """<?xml version="1.0" encoding="UTF-8"?>
<feed xmlns:yt="http://www.youtube.com/xml/schemas/2015" xmlns:media="http://search.yahoo.com/mrss/" xmlns="http://www.w3.org/2005/Atom">
 <link rel="self" href="http://www.youtube.com/feeds/videos.xml?channel_id={channel_id}"/>
 <id>yt:channel:{channel_id}</id>
 <yt:channelId>{channel_id}</yt:channelId>
 <title>Anthony Chaffee MD</title>
 <link rel="alternate" href="https://www.youtube.com/channel/{channel_id}"/>
 <author>
  <name>Anthony Chaffee MD</name>
  <uri>https://www.youtube.com/channel/{channel_id}</uri>
 </author>
 <published>2016-03-01T19:12:45+00:00</published>
{entries}
</feed>
"""

ATOM_ENTRY = """ <entry>
  <id>yt:video:{video_id}</id>
  <yt:videoId>{video_id}</yt:videoId>
  <yt:channelId>{channel_id}</yt:channelId>
  <title>{title}</title>
  <link rel="alternate" href="https://www.youtube.com/watch?v={video_id}"/>
  <author>
   <name>Anthony Chaffee MD</name>
   <uri>https://www.youtube.com/channel/{channel_id}</uri>
  </author>
  <published>{published}</published>
  <updated>2026-11-20T08:00:00+00:00</updated>
  <media:group>
   <media:title>{title}</media:title>
   <media:content url="https://www.youtube.com/v/{video_id}?version=3" type="application/x-shockwave-flash" width="640" height="390"/>
   <media:thumbnail url="https://i2.ytimg.com/vi/{video_id}/hqdefault.jpg" width="480" height="360"/>
   <media:description>{title}</media:description>
   <media:community>
    <media:starRating count="120" average="5.00" min="1" max="5"/>
    <media:statistics views="4567"/>
   </media:community>
  </media:group>
 </entry>"""


def channel_feed(channel_id: str, videos: list[tuple[str, str, str]]) -> bytes:
    """A feed in YouTube's documented shape; `videos` = [(id, title, published ISO time)]."""
    entries = "\n".join(
        ATOM_ENTRY.format(video_id=v, title=t, published=p, channel_id=channel_id) for v, t, p in videos
    )
    return ATOM_FEED.format(channel_id=channel_id, entries=entries).encode()
