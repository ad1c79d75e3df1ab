#!/usr/bin/python3
"""A deliberately bad udp-chat relay for the tests (python3's socket module).

Binds 127.0.0.1:0 and prints "listening on 127.0.0.1:PORT (udp)" on stderr.
Relays "UC1 SEQ NICK TEXT" datagrams to every other peer it has heard from,
but by the sequence number of each message:
  3: dropped         5: held back and sent after 6 (reordering)
  8: sent twice      10: followed by a 2000-byte datagram (truncation)
"""
import socket
import sys

s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", 0))
print("listening on 127.0.0.1:%d (udp)" % s.getsockname()[1], file=sys.stderr, flush=True)
peers = []
held = None
while True:
    data, addr = s.recvfrom(65536)
    if addr not in peers:
        peers.append(addr)
    parts = data.split(b" ", 3)
    seq = int(parts[1])
    if seq == 0:
        continue
    others = [p for p in peers if p != addr]

    def out(d):
        for p in others:
            s.sendto(d, p)

    if seq == 3:
        continue
    if seq == 5:
        held = data
        continue
    out(data)
    if seq == 6 and held:
        out(held)
        held = None
    if seq == 8:
        out(data)
    if seq == 10:
        out(b"UC1 11 " + parts[2] + b" " + b"z" * 2000)
