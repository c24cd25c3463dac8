#!/usr/bin/env python3
"""Sends N concurrent GETs for one URL and prints the wall time in seconds.

  coalesce.py URL N
"""

import sys
import threading
import time
import urllib.request


def main():
    url, count = sys.argv[1], int(sys.argv[2])
    barrier = threading.Barrier(count + 1)
    failures = []

    def fetch():
        barrier.wait()
        try:
            with urllib.request.urlopen(url, timeout=60) as response:
                response.read()
        except Exception as error:  # noqa: BLE001 - report every kind of failure
            failures.append(str(error))

    threads = [threading.Thread(target=fetch) for _ in range(count)]
    for thread in threads:
        thread.start()
    barrier.wait()
    started = time.monotonic()
    for thread in threads:
        thread.join()
    print(f"{time.monotonic() - started:.2f} {len(failures)}")


if __name__ == "__main__":
    main()
