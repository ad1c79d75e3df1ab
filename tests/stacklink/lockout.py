#!/usr/bin/env python3
"""Kernel-side attackers and clients for the lock-out tests (test_lockout.c).

Each subcommand is bounded in count and in time and prints one result line.

  synflood DST PORT COUNT SECONDS
      COUNT SYNs to DST:PORT from spoofed sources (10.98.0.0/16, any port)
      through a raw socket, as fast as the stack takes them in (see
      synflood()); prints "sent N in T s (R/s), L echo requests unanswered".
  legit DST PORT SECONDS
      connect, echo 4 bytes, close, again and again for SECONDS; a try
      that takes longer than 1 s (connect, echo or close) fails.
      Prints "legit ok=N fail=M max_ms=X".
  idle DST PORT COUNT SRC LEGIT_SRC
      opens COUNT connections from SRC and leaves them idle, then a client
      from LEGIT_SRC echoes once; counts how many of the idle ones the
      server reset. Prints "idle open=N reset=M legit=ok|fail".
  fragflood DST PORT ROUNDS
      each round: 8 first fragments of datagrams that never complete, then
      one UDP datagram in two fragments to the echo port, whose echo must
      come back within 1 s. Prints "frag ok=N fail=M".
"""
import os
import random
import socket
import struct
import sys
import time


def csum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def ip_header(src, dst, proto, payload_len, ident, frag_field):
    h = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + payload_len, ident, frag_field, 64, proto, 0,
                    socket.inet_aton(src), socket.inet_aton(dst))
    return h[:10] + struct.pack("!H", csum(h)) + h[12:]


def tcp_syn(src, dst, sport, dport, seq):
    opts = struct.pack("!BBH", 2, 4, 1460)
    hdr = struct.pack("!HHIIBBHHH", sport, dport, seq, 0, (5 + 1) << 4, 0x02, 64240, 0, 0) + opts
    pseudo = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!BBH", 0, 6, len(hdr))
    c = csum(pseudo + hdr)
    return hdr[:16] + struct.pack("!H", c) + hdr[18:]


def ping_packet(ident, seq):
    body = struct.pack("!BBHHH", 8, 0, 0, ident, seq) + b"lockout!"
    return body[:2] + struct.pack("!H", csum(body)) + body[4:]


def synflood(dst, port, count, seconds):
    """As fast as the stack takes them in. The TUN device holds 500
    packets for the stack and drops the rest, and a dropped packet is as
    likely the client's as the attacker's: that would measure capacity,
    not lock-out. So after every 128 SYNs goes an ICMP echo request; its
    reply says the stack has read everything before it, and no more than
    two batches are ever unanswered (256 SYNs waiting at most)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    icmp = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    icmp.settimeout(1.0)
    ident = os.getpid() & 0xFFFF
    rnd = random.Random(7)
    t0 = time.monotonic()
    end = t0 + seconds
    sent = batches = answered = lost = 0
    while sent < count and time.monotonic() < end:
        for _ in range(min(128, count - sent)):
            src = "10.98.%d.%d" % (rnd.randrange(256), rnd.randrange(1, 255))
            tcp = tcp_syn(src, dst, rnd.randrange(1024, 65536), port, rnd.getrandbits(32))
            s.sendto(ip_header(src, dst, 6, len(tcp), sent & 0xFFFF, 0) + tcp, (dst, 0))
            sent += 1
        batches += 1
        icmp.sendto(ping_packet(ident, batches & 0xFFFF), (dst, 0))
        while batches - answered - lost > 1 and time.monotonic() < end:
            try:
                pkt = icmp.recv(2048)
            except socket.timeout:
                lost += 1
                continue
            ihl = (pkt[0] & 15) * 4
            if pkt[ihl] == 0 and struct.unpack("!H", pkt[ihl + 4:ihl + 6])[0] == ident:
                answered += 1
    took = time.monotonic() - t0
    print("sent %d in %.1f s (%d/s), %d echo requests unanswered" %
          (sent, took, sent / took if took else 0, lost), flush=True)


def echo_once(dst, port, src=None):
    """connect, send 4 bytes, read them back, close; True within 1 s."""
    t0 = time.monotonic()
    try:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.settimeout(1.0)
        if src:
            s.bind((src, 0))
        s.connect((dst, port))
        s.sendall(b"ping")
        got = b""
        while len(got) < 4:
            left = 1.0 - (time.monotonic() - t0)
            if left <= 0:
                raise socket.timeout()
            s.settimeout(left)
            b = s.recv(4 - len(got))
            if not b:
                break
            got += b
        s.close()
        ok = got == b"ping" and time.monotonic() - t0 < 1.0
    except OSError:
        ok = False
    return ok, (time.monotonic() - t0) * 1000


def legit(dst, port, seconds):
    ok = fail = 0
    worst = 0.0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        good, ms = echo_once(dst, port)
        worst = max(worst, ms)
        if good:
            ok += 1
        else:
            fail += 1
        time.sleep(0.02)
    print("legit ok=%d fail=%d max_ms=%d" % (ok, fail, worst), flush=True)


def idle(dst, port, count, src, legit_src):
    """A connection reset before connect() returned (ECONNRESET) did
    complete its handshake: it counts as opened and reset."""
    socks = []
    opened = reset = 0
    errors = []
    for _ in range(count):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.settimeout(5.0)   # a load of its own: time enough for any handshake
        s.bind((src, 0))
        try:
            s.connect((dst, port))
            socks.append(s)
            opened += 1
        except ConnectionResetError:
            opened += 1
            reset += 1
            s.close()
        except OSError as e:
            errors.append(type(e).__name__)
            s.close()
    if errors:
        print("connect errors: " + " ".join(errors), file=sys.stderr, flush=True)
    time.sleep(0.5)   # the resets, if any, arrive
    for s in socks:
        s.setblocking(False)
        try:
            if s.recv(1) == b"":
                reset += 1
        except BlockingIOError:
            pass
        except OSError:
            reset += 1
    good, _ = echo_once(dst, port, legit_src)
    print("idle open=%d reset=%d legit=%s" % (opened, reset, "ok" if good else "fail"),
          flush=True)
    for s in socks:
        s.close()


def fragflood(dst, port, rounds):
    raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.bind(("0.0.0.0", 0))
    u.settimeout(1.0)
    r = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    r.connect((dst, port))
    src = r.getsockname()[0]
    r.close()
    sport = u.getsockname()[1]
    ident = 1000
    ok = fail = 0
    for n in range(rounds):
        for _ in range(8):   # first fragments that never complete
            ident += 1
            body = os.urandom(512)
            raw.sendto(ip_header(src, dst, 17, len(body), ident, 0x2000) + body, (dst, 0))
        data = bytes([n & 0xFF]) * 1000
        udp = struct.pack("!HHHH", sport, port, 8 + len(data), 0) + data
        pseudo = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!BBH", 0, 17,
                                                                             len(udp))
        c = csum(pseudo + udp) or 0xFFFF
        udp = udp[:6] + struct.pack("!H", c) + udp[8:]
        ident += 1
        first, rest = udp[:512], udp[512:]
        raw.sendto(ip_header(src, dst, 17, len(first), ident, 0x2000) + first, (dst, 0))
        raw.sendto(ip_header(src, dst, 17, len(rest), ident, 512 // 8) + rest, (dst, 0))
        try:
            got, _ = u.recvfrom(4096)
            if got == data:
                ok += 1
            else:
                fail += 1
        except socket.timeout:
            fail += 1
    print("frag ok=%d fail=%d" % (ok, fail), flush=True)


def main(argv):
    cmd = argv[1]
    if cmd == "synflood":
        synflood(argv[2], int(argv[3]), int(argv[4]), float(argv[5]))
    elif cmd == "legit":
        legit(argv[2], int(argv[3]), float(argv[4]))
    elif cmd == "idle":
        idle(argv[2], int(argv[3]), int(argv[4]), argv[5], argv[6])
    elif cmd == "fragflood":
        fragflood(argv[2], int(argv[3]), int(argv[4]))
    else:
        print("unknown command " + cmd, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
