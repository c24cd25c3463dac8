#!/usr/bin/env python3
"""Writes dnsperf input files in its binary (-B) format: each query is a
two-byte length followed by the raw message (RFC 1035 section 4.2.2).

  queries.py OUTDIR

static.bin   A static.bench.test, EDNS(0), no ECS
geo.bin      A www.bench.test, EDNS(0), no ECS
geo-ecs.bin  A www.bench.test, EDNS(0), ECS varying over 4096 IPv4 /24 and
             4096 IPv6 /56 networks (random, seeded, inside 1.0.0.0-223.x
             and 2000::/3)
"""

import os
import random
import struct
import sys


def name(text):
    out = b""
    for label in text.rstrip(".").split("."):
        out += bytes([len(label)]) + label.encode()
    return out + b"\0"


def query(qname, qtype=1, ecs=None):
    header = struct.pack("!HHHHHH", 0, 0, 1, 0, 0, 1)
    question = name(qname) + struct.pack("!HH", qtype, 1)
    options = b""
    if ecs is not None:
        family, source, address = ecs
        payload = struct.pack("!HBB", family, source, 0) + address[: (source + 7) // 8]
        options = struct.pack("!HH", 8, len(payload)) + payload
    opt = b"\0" + struct.pack("!HHIH", 41, 1232, 0, len(options)) + options
    return header + question + opt


def write(path, messages):
    with open(path, "wb") as out:
        for message in messages:
            out.write(struct.pack("!H", len(message)) + message)


def main():
    outdir = sys.argv[1]
    rng = random.Random(7)
    write(os.path.join(outdir, "static.bin"), [query("static.bench.test")])
    write(os.path.join(outdir, "geo.bin"), [query("www.bench.test")])
    ecs = []
    for _ in range(4096):
        first = rng.randint(1, 223)
        while first in (10, 127):
            first = rng.randint(1, 223)
        address = bytes([first, rng.randint(0, 255), rng.randint(0, 255), 0])
        ecs.append(query("www.bench.test", ecs=(1, 24, address)))
    for _ in range(4096):
        high = (0x2000 << 48) | rng.getrandbits(61 - 8) << 8
        address = high.to_bytes(8, "big") + bytes(8)
        ecs.append(query("www.bench.test", ecs=(2, 56, address)))
    rng.shuffle(ecs)
    write(os.path.join(outdir, "geo-ecs.bin"), ecs)


if __name__ == "__main__":
    main()
