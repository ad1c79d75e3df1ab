#!/usr/bin/python3
"""Kernel-side peers of `sockstack serve discard|source` (test_serve.c).

The pattern is computed here from its description in docs/protocols.md
("Pattern"), not from the library's code: xoshiro256** seeded through
splitmix64, each 64-bit output written little-endian, cut to the length.

  read HOST PORT SEED N [half]  connect (half: shut down our sending side at
                                once), read to EOF; print "received COUNT"
                                and "pattern ok" or "pattern differs at I"
  check SEED N                  the same for the bytes on stdin (socat's)
  send HOST PORT N              send N bytes (i*7 mod 256), shut down our
                                side, read to EOF; print "sent N" and
                                "received COUNT" (a reset is an error)
"""
import socket
import struct
import sys

M = (1 << 64) - 1


def pattern(seed, n):
    def splitmix(x):
        x = (x + 0x9E3779B97F4A7C15) & M
        z = x
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M
        return x, z ^ (z >> 31)

    s = []
    x = seed & M
    for _ in range(4):
        x, v = splitmix(x)
        s.append(v)

    def rotl(v, k):
        return ((v << k) | (v >> (64 - k))) & M

    out = bytearray()
    while len(out) < n:
        result = (rotl((s[1] * 5) & M, 7) * 9) & M
        t = (s[1] << 17) & M
        s[2] ^= s[0]
        s[3] ^= s[1]
        s[1] ^= s[2]
        s[0] ^= s[3]
        s[2] ^= t
        s[3] = rotl(s[3], 45)
        out += struct.pack("<Q", result)
    return bytes(out[:n])


def verdict(got, seed, n):
    print("received", len(got))
    want = pattern(seed, n)
    if got == want:
        print("pattern ok")
        return
    i = next((i for i in range(min(len(got), n)) if got[i] != want[i]), min(len(got), n))
    print("pattern differs at", i)


def read_all(s):
    got = bytearray()
    while True:
        b = s.recv(1 << 16)
        if not b:
            return bytes(got)
        got += b


def main():
    mode = sys.argv[1]
    if mode == "read":
        host, port, seed, n = sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
        s = socket.create_connection((host, port), timeout=20)
        if len(sys.argv) > 6 and sys.argv[6] == "half":
            s.shutdown(socket.SHUT_WR)
        verdict(read_all(s), seed, n)
        s.close()
    elif mode == "check":
        verdict(sys.stdin.buffer.read(), int(sys.argv[2]), int(sys.argv[3]))
    elif mode == "send":
        host, port, n = sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
        s = socket.create_connection((host, port), timeout=20)
        s.sendall(bytes((i * 7) & 255 for i in range(n)))
        s.shutdown(socket.SHUT_WR)
        print("sent", n)
        print("received", len(read_all(s)))
        s.close()
    else:
        sys.exit("unknown mode " + mode)


if __name__ == "__main__":
    main()
