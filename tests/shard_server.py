"""A shard server on 127.0.0.1 that can misbehave on purpose (tests/test_urls.py, the reliability suite):
`srv.drop[name] = k` cuts the next k downloads of `name` half-way (after promising the full Content-Length),
`srv.missing` answers 404, `srv.stall[name] = s` waits s seconds before the body."""
from __future__ import annotations

import http.server
import os
import threading
import time
from functools import partial


class Handler(http.server.SimpleHTTPRequestHandler):
    """Serves the shard folder; `server.drop[name] = k` cuts the next k downloads of `name` half-way (after sending
    the full Content-Length), `server.missing` answers 404, `server.stall` sleeps before the body."""

    def do_GET(self):  # noqa: N802 - http.server's name
        name = os.path.basename(self.path)
        srv = self.server
        srv.requests.append(name)
        if name in srv.missing:
            self.send_error(404)
            return
        if name in srv.stall:
            time.sleep(srv.stall[name])
        if srv.drop.get(name, 0) > 0:
            srv.drop[name] -= 1
            data = open(os.path.join(self.directory, name), "rb").read()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(2)
            return
        super().do_GET()

    def log_message(self, *args):  # quiet
        pass


def start(directory: str) -> http.server.ThreadingHTTPServer:
    """Serve `directory` in a daemon thread; `srv.url` is its base URL, `srv.shutdown()` stops it."""
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(Handler, directory=directory))
    srv.drop, srv.missing, srv.stall, srv.requests = {}, set(), {}, []
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    srv.url = f"http://127.0.0.1:{srv.server_address[1]}"
    return srv
