#!/usr/bin/env python3
"""The benchmark origin: fixed bodies with cache headers, slow paths for the
coalescing runs, and request counts at /stats.

  origin.py ADDRESS PORT

/1k, /100k         1 KiB / 100 KiB, Cache-Control: max-age=3600 (any query string)
/slow?...          1 s delay, max-age=3600
/slow-nostore?...  1 s delay, no-store
/stats             JSON {path: requests} counted by path without query
"""

import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

BODIES = {"/1k": b"x" * 1024, "/100k": b"y" * (100 * 1024)}
COUNTS = {}
LOCK = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):
        path = self.path.split("?", 1)[0]
        if path == "/stats":
            with LOCK:
                body = json.dumps(COUNTS).encode()
            return self.reply(200, body, "no-store")
        with LOCK:
            COUNTS[path] = COUNTS.get(path, 0) + 1
        if path in BODIES:
            return self.reply(200, BODIES[path], "max-age=3600")
        if path == "/slow":
            time.sleep(1)
            return self.reply(200, b"slow", "max-age=3600")
        if path == "/slow-nostore":
            time.sleep(1)
            return self.reply(200, b"nostore", "no-store")
        return self.reply(404, b"not found", "max-age=60")

    def reply(self, status, body, cache_control):
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", cache_control)
        self.end_headers()
        self.wfile.write(body)


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024


if __name__ == "__main__":
    Server((sys.argv[1], int(sys.argv[2])), Handler).serve_forever()
