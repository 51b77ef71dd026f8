"""Random and mutated OSC datagrams, and a flood sender (run as a separate process).

    python tests/osc_flood.py PORT N_FUZZ FLOOD_SECONDS   -> prints a JSON line of what was sent

Loopback only: the target is always 127.0.0.1, every loop is bounded in count and time.
"""
from __future__ import annotations

import json
import random
import socket
import struct
import sys
import time


def _pad(b: bytes) -> bytes:
    return b + b"\0" * (4 - len(b) % 4)


def message(address: str, tags: str, args) -> bytes:
    out = _pad(address.encode()) + _pad(("," + tags).encode())
    for t, a in zip(tags, args):
        if t == "f":
            out += struct.pack(">f", a)
        elif t == "i":
            out += struct.pack(">i", a)
        elif t == "d":
            out += struct.pack(">d", a)
        elif t == "h":
            out += struct.pack(">q", a)
        elif t == "s":
            out += _pad(a.encode())
        elif t == "b":
            out += struct.pack(">i", len(a)) + a + b"\0" * (-len(a) % 4)
        elif t in "mrc":
            out += struct.pack(">I", a)
        elif t == "t":
            out += struct.pack(">Q", a)
    return out


def bundle(parts, timetag=1) -> bytes:
    return b"#bundle\0" + struct.pack(">Q", timetag) + b"".join(struct.pack(">i", len(p)) + p for p in parts)


def corpus(rng: random.Random) -> list[bytes]:
    """Valid packets of every shape the engine meets: TouchDesigner, Max, liblo, /vj/..."""
    c = [
        message("/td/chan1", "f", [0.5]),
        message("/max/list", "iff", [1, 2.5, 3.5]),
        message("/label", "s", ["intro"]),
        message("/go", "", []),
        message("/flags", "TFNI", []),
        message("/blob", "b", [b"\x01\x02\x03"]),
        message("/big", "dh", [1.5, 1 << 40]),
        message("/midi", "m", [0x90244000]),
        message("/time", "t", [(1 << 32) * 3]),
        message("/arr", "[ff]", []),
        message("/vj/param/speed", "f", [0.3]),
        message("/vj/tempo", "f", [128.0]),
        message("/vj/scene", "i", [2]),
        message("/vj/cue/next", "", []),
        message("/vj/latent/seed", "i", [7]),
    ]
    c.append(bundle(c[:4], timetag=int(time.time() + 2208988800 + 3600) << 32))
    c.append(bundle([bundle(c[4:8]), c[0]]))
    return c


def mutate(rng: random.Random, pkt: bytes) -> bytes:
    b = bytearray(pkt)
    how = rng.randrange(8)
    if how == 0 and b:                       # bit flips
        for _ in range(rng.randint(1, 4)):
            i = rng.randrange(len(b))
            b[i] ^= 1 << rng.randrange(8)
    elif how == 1:                           # truncation
        del b[rng.randrange(len(b) + 1):]
    elif how == 2:                           # random bytes inserted
        i = rng.randrange(len(b) + 1)
        b[i:i] = rng.randbytes(rng.randint(1, 16))
    elif how == 3:                           # a type tag changed
        i = pkt.find(b",")
        if i >= 0 and i + 1 < len(b):
            b[i + 1] = rng.choice(b"ifsbhdtcrmTFNI[]?xyz\0")
    elif how == 4 and len(b) >= 4:           # a length field set wild
        i = rng.randrange(0, len(b) - 3, 4) if len(b) >= 8 else 0
        b[i:i + 4] = struct.pack(">i", rng.choice([-1, 0, 3, 1 << 30, len(b) * 2]))
    elif how == 5:                           # duplicated / spliced
        b += b[:rng.randrange(len(b) + 1)]
    elif how == 6:                           # huge: padded to near the datagram limit
        b += b"\0" * rng.choice([1000, 30000, 65000 - len(b)])
    else:                                    # odd length
        b += b"\x00" * rng.randint(1, 3)
    return bytes(b[:65507])


def datagrams(n: int, seed: int = 0):
    """n datagrams: about a quarter pure noise, the rest mutated valid packets."""
    rng = random.Random(seed)
    c = corpus(rng)
    for k in range(n):
        r = rng.random()
        if r < 0.25:
            yield rng.randbytes(rng.choice([0, 1, 3, 4, 8, 16, 64, 512, 4096]))
        elif r < 0.30:
            yield b"/" + rng.randbytes(rng.randrange(64))
        else:
            yield mutate(rng, rng.choice(c))


def main(port: int, n_fuzz: int, seconds: float) -> dict:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
    target = ("127.0.0.1", port)
    sent_fuzz = errors = 0
    t0 = time.monotonic()
    for d in datagrams(n_fuzz, seed=port):
        if time.monotonic() - t0 > 120:      # bounded in time whatever happens
            break
        try:
            sock.sendto(d, target)
            sent_fuzz += 1
        except OSError:
            errors += 1
    fuzz_s = time.monotonic() - t0
    # the flood: small valid messages to a few addresses, and junk, as fast as the loopback takes them
    rng = random.Random(1)
    pkts = [message(f"/flood/{i}", "f", [i / 64]) for i in range(64)] + \
           [message("/vj/param/speed", "f", [0.5]), bundle([message("/flood/b", "f", [1.0])] * 8)] + \
           [rng.randbytes(32) for _ in range(8)]
    sent_flood = 0
    t1 = time.monotonic()
    end = t1 + seconds
    while True:
        for p in pkts:
            try:
                sock.sendto(p, target)
            except OSError:
                errors += 1
        sent_flood += len(pkts)
        if time.monotonic() >= end:
            break
    flood_s = time.monotonic() - t1
    return {"fuzz": sent_fuzz, "fuzz_s": round(fuzz_s, 2), "flood": sent_flood, "flood_s": round(flood_s, 2),
            "flood_rate": round(sent_flood / flood_s), "errors": errors}


if __name__ == "__main__":
    print(json.dumps(main(int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]))), flush=True)
