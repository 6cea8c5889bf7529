"""A shard server on 127.0.0.1 that can misbehave on purpose (tests/test_urls.py, the reliability suite).

    srv.drop[name] = k      the next k downloads of `name` break half-way (after promising the full Content-Length)
    srv.missing             names answered with 404
    srv.stall[name] = s     wait s seconds before the body
    srv.trickle[name] = r   send the body at r bytes/s (a throttled store)
    srv.ranges = False      ignore Range requests (answer 200 with the whole file, as some servers do)
    srv.sent[name]          body bytes sent so far; srv.requests: the names asked for, in order
    srv.files[name] = path  serve `path` as `name` (anything else comes from the served folder)
"""
from __future__ import annotations

import http.server
import os
import re
import threading
import time
from functools import partial


class Handler(http.server.BaseHTTPRequestHandler):
    def __init__(self, *args, directory: str, **kw):
        self.directory = directory
        super().__init__(*args, **kw)

    def do_GET(self):  # noqa: N802 - http.server's name
        name = os.path.basename(self.path)
        srv = self.server
        srv.requests.append(name)
        path = srv.files.get(name, os.path.join(self.directory, name))
        if name in srv.missing or not os.path.isfile(path):
            self.send_error(404)
            return
        if name in srv.stall:
            time.sleep(srv.stall[name])
        with open(path, "rb") as fh:
            data = fh.read()
        m = re.match(r"bytes=(\d+)-$", self.headers.get("Range") or "")
        start = int(m.group(1)) if m and srv.ranges and int(m.group(1)) < len(data) else 0
        body = data[start:]
        self.send_response(206 if start else 200)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Accept-Ranges", "bytes" if srv.ranges else "none")
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.end_headers()
        cut = srv.drop.get(name, 0) > 0
        if cut:
            srv.drop[name] -= 1
            body = body[: len(body) // 2]
        try:
            if name in srv.trickle:
                step = max(1, int(srv.trickle[name] / 20))
                for i in range(0, len(body), step):
                    self.wfile.write(body[i:i + step])
                    self.wfile.flush()
                    srv.sent[name] = srv.sent.get(name, 0) + len(body[i:i + step])
                    time.sleep(0.05)
            else:
                self.wfile.write(body)
                srv.sent[name] = srv.sent.get(name, 0) + len(body)
            self.wfile.flush()
        except OSError:  # the client gave up (a deadline): nothing to do
            return
        if cut:
            self.close_connection = True
            self.connection.shutdown(2)

    def log_message(self, *args):  # quiet
        pass


def start(directory: str) -> http.server.ThreadingHTTPServer:
    """Serve `directory` in a daemon thread; `srv.url` is its base URL, `srv.shutdown()` stops it."""
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(Handler, directory=directory))
    srv.daemon_threads = True
    srv.drop, srv.missing, srv.stall, srv.trickle, srv.requests = {}, set(), {}, {}, []
    srv.sent, srv.files, srv.ranges = {}, {}, True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    srv.url = f"http://127.0.0.1:{srv.server_address[1]}"
    return srv
