#!/usr/bin/env python3
"""Mixed load against one edge for a while, sampling its memory, descriptors
and latency; fails on errors or on growth.

  soak.py EDGE_HOST:PORT ADMIN_HOST:PORT EDGE_PID MINUTES TIMELINE.csv

Load, all at once, for MINUTES:
  hits       16 keep-alive HTTP/1.1 clients on /1k (latency recorded)
  misses     2 clients, a new query string each time (cache churn)
  http/2     h2load bursts (4 connections x 10 streams) every 10 s, if installed
  slow       8 clients sending a request head one byte every 500 ms
  silent     200 connections that never send a byte, reopened when closed
  abandoned  4 clients that send a request and close before the answer

Every 5 s a line goes to TIMELINE.csv: seconds, RSS MiB, open descriptors,
open connections (edge metric), hit p50/p99 ms, hit errors in the window.
Exit 1 when a hit failed, or when RSS or descriptors grew between the end
once the cache is warm (first quarter, at least 3 minutes in) and the end
beyond a small allowance.
"""

import random
import shutil
import socket
import subprocess
import sys
import threading
import time

edge_host, edge_port = sys.argv[1].rsplit(":", 1)
admin = sys.argv[2]
pid = int(sys.argv[3])
minutes = float(sys.argv[4])
timeline_path = sys.argv[5]
edge_port = int(edge_port)
deadline = time.time() + minutes * 60

lock = threading.Lock()
window = {"latencies": [], "errors": 0}
reasons = {}
totals = {"hits": 0, "errors": 0, "misses": 0, "h2_failed": 0, "h2_bursts": 0}


def connect():
    sock = socket.create_connection((edge_host, edge_port), timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def read_response(sock, buffer):
    """Reads one response with Content-Length; returns (status, rest)."""
    while b"\r\n\r\n" not in buffer:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed")
        buffer += chunk
    head, _, rest = buffer.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed mid-body")
        rest += chunk
    return status, rest[length:]


def hitter():
    sock, buffer = None, b""
    while time.time() < deadline:
        started = time.perf_counter()
        try:
            if sock is None:
                sock, buffer = connect(), b""
            sock.sendall(b"GET /1k HTTP/1.1\r\nHost: soak.test\r\n\r\n")
            status, buffer = read_response(sock, buffer)
            ok = status == 200
            if not ok:
                with lock:
                    reasons[f"status {status}"] = reasons.get(f"status {status}", 0) + 1
        except (OSError, ConnectionError, ValueError, IndexError) as error:
            ok = False
            reason = type(error).__name__ + ": " + str(error)[:60]
            with lock:
                reasons[reason] = reasons.get(reason, 0) + 1
            if sock is not None:
                sock.close()
            sock = None
        elapsed = (time.perf_counter() - started) * 1000
        with lock:
            if ok:
                window["latencies"].append(elapsed)
                totals["hits"] += 1
            else:
                window["errors"] += 1
                totals["errors"] += 1


def misser():
    while time.time() < deadline:
        try:
            with connect() as sock:
                key = random.getrandbits(64)
                sock.sendall(f"GET /1k?soak={key} HTTP/1.1\r\nHost: soak.test\r\nConnection: close\r\n\r\n".encode())
                read_response(sock, b"")
                with lock:
                    totals["misses"] += 1
        except (OSError, ConnectionError, ValueError, IndexError):
            pass


def slow_client():
    head = b"GET /1k HTTP/1.1\r\nHost: soak.test\r\nX-Slow: " + b"a" * 200
    while time.time() < deadline:
        try:
            with connect() as sock:
                for byte in head:
                    sock.sendall(bytes([byte]))
                    time.sleep(0.5)
                    if time.time() > deadline:
                        return
        except OSError:
            time.sleep(0.2)


def silent_holder(count):
    held = []
    while time.time() < deadline:
        alive = []
        for sock in held:
            try:
                sock.setblocking(False)
                if sock.recv(1) == b"":
                    sock.close()
                    continue
            except BlockingIOError:
                pass
            except OSError:
                sock.close()
                continue
            alive.append(sock)
        held = alive
        while len(held) < count:
            try:
                held.append(connect())
            except OSError:
                break
        time.sleep(1)
    for sock in held:
        sock.close()


def abandoner():
    while time.time() < deadline:
        try:
            sock = connect()
            sock.sendall(f"GET /slow?abandon={random.getrandbits(32)} HTTP/1.1\r\nHost: soak.test\r\n\r\n".encode())
            time.sleep(0.05)
            sock.close()
        except OSError:
            pass
        time.sleep(0.1)


def h2_bursts():
    h2load = shutil.which("h2load")
    if not h2load:
        return
    while time.time() < deadline - 10:
        result = subprocess.run(
            [h2load, "-n", "2000", "-c", "4", "-m", "10", f"http://{edge_host}:{edge_port}/1k"],
            capture_output=True, text=True, timeout=60,
        )
        failed = 0
        for line in result.stdout.splitlines():
            if line.startswith("requests:"):
                parts = line.replace(",", "").split()
                failed = int(parts[parts.index("failed") - 1])
        with lock:
            totals["h2_bursts"] += 1
            totals["h2_failed"] += failed
        time.sleep(10)


def sample():
    rss = 0
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1]) / 1024
    import os
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    connections = -1
    try:
        with socket.create_connection(tuple([admin.rsplit(":", 1)[0], int(admin.rsplit(":", 1)[1])]), timeout=5) as sock:
            sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n")
            text = b""
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                text += chunk
        for line in text.decode(errors="replace").splitlines():
            if line.startswith("edge_connections_open "):
                connections = int(float(line.split()[1]))
    except OSError:
        pass
    return rss, fds, connections


def percentile(values, share):
    if not values:
        return 0.0
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * share))]


threads = [threading.Thread(target=hitter, daemon=True) for _ in range(16)]
threads += [threading.Thread(target=misser, daemon=True) for _ in range(2)]
threads += [threading.Thread(target=slow_client, daemon=True) for _ in range(8)]
threads += [threading.Thread(target=abandoner, daemon=True) for _ in range(4)]
threads += [threading.Thread(target=silent_holder, args=(200,), daemon=True)]
threads += [threading.Thread(target=h2_bursts, daemon=True)]
for thread in threads:
    thread.start()

started = time.time()
rows = []
with open(timeline_path, "w") as timeline:
    timeline.write("seconds,rss_mib,fds,connections,hit_p50_ms,hit_p99_ms,hit_errors\n")
    while time.time() < deadline:
        time.sleep(5)
        with lock:
            latencies, errors = window["latencies"], window["errors"]
            window["latencies"], window["errors"] = [], 0
        rss, fds, connections = sample()
        row = (time.time() - started, rss, fds, connections, percentile(latencies, 0.5), percentile(latencies, 0.99), errors)
        rows.append(row)
        timeline.write("%.0f,%.1f,%d,%d,%.2f,%.2f,%d\n" % row)
        timeline.flush()

for thread in threads:
    thread.join(timeout=30)

# The baseline is taken once the cache has filled (its 16 MiB take about two
# minutes of misses): the first quarter, but not before three minutes unless
# that is past half the run.
warm = max(len(rows) // 4, min(36, len(rows) // 2))
quarter = rows[max(0, warm - 1)]
last = rows[-1]
peak_rss = max(row[1] for row in rows)
all_p99 = sorted(row[5] for row in rows)
print(f"ran {minutes} min: {totals['hits']} hits, {totals['errors']} failed, {totals['misses']} misses, "
      f"{totals['h2_bursts']} h2load bursts with {totals['h2_failed']} failed requests")
print(f"RSS {quarter[1]:.1f} MiB once warm, {last[1]:.1f} MiB at the end, peak {peak_rss:.1f} MiB")
print(f"descriptors {quarter[2]} once warm, {last[2]} at the end")
print(f"hit p99 per window: median {all_p99[len(all_p99) // 2]:.2f} ms, worst {all_p99[-1]:.2f} ms")
if reasons:
    print("hit failures:", reasons)
failures = []
if totals["errors"]:
    failures.append(f"{totals['errors']} hits failed")
if totals["h2_failed"]:
    failures.append(f"{totals['h2_failed']} HTTP/2 requests failed")
if last[1] > quarter[1] * 1.2 + 16:
    failures.append("resident memory grew")
if last[2] > quarter[2] + 64:
    failures.append("descriptors grew")
if failures:
    print("FAIL: " + "; ".join(failures))
    sys.exit(1)
print("ok")
