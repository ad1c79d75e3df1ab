#!/usr/bin/env python3
"""Writes the seed corpora of the stack fuzz targets:
fuzz/corpus/fuzz_stack/ and fuzz/corpus/fuzz_simnet/ (run from the top of
the tree: scripts/gen-fuzz-corpus.py). The input formats are described at
the top of fuzz/fuzz_stack.c and fuzz/fuzz_simnet.c; each seed here is one
small scenario the fuzzers start from (a handshake, data both ways, options,
a full buffer, the ways a connection ends)."""
import os
import struct
import sys

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PEER, US = bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2])

# fuzz_stack record control bits
FIX_IP, FIX_L4, STEER, FIX_TS, BATCH = 1, 2, 4, 8, 16
FIX = FIX_IP | FIX_L4
T0, T1MS, T40MS, T200MS, T1S, T3S, T60S, T2H = (i << 5 for i in range(8))
# fuzz_stack application calls (low 4 bits of act; slot in bits 4-6)
NONE, SEND, RECV, SHUT, CLOSE, ABORT, ACCEPT, SETOPT, URG, USEND, URECV, \
    CONNECT, LISTEN, QUERY, URGQ, POLL = range(16)
LSN, CONN, ACTIVE, UDP = 0, 1, 2, 3  # the setup's handle slots
NXT = 8  # with STEER: the ACK is relative to SND.NXT, not SND.UNA
SYN, ACK, FIN, RST, PSH, URGF = 0x02, 0x10, 0x01, 0x04, 0x08, 0x20

MSS_1460 = b"\x02\x04\x05\xb4"
WS_7 = b"\x01\x03\x03\x07"
SACK_OK = b"\x01\x01\x04\x02"


def ts(val, ecr):
    return b"\x01\x01\x08\x0a" + struct.pack(">II", val, ecr)


def csum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(">%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return (~s) & 0xFFFF


def ip(proto, payload, ident=0, frag=0, src=PEER, dst=US):
    h = struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), ident, frag, 64,
                    proto, 0, src, dst)
    h = h[:10] + struct.pack(">H", csum(h)) + h[12:]
    return h + payload


def tcp(sport, dport, seq, ack, flags, data=b"", opts=b"", win=65535, urp=0, slot=0):
    """A TCP segment in IPv4 with correct checksums. With STEER, the IP id's
    low bits pick the handle slot and seq/ack are 16-bit offsets."""
    hl = 20 + len(opts)
    t = struct.pack(">HHIIBBHHH", sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF,
                    (hl // 4) << 4, flags, win, 0, urp) + opts + data
    ps = PEER + US + struct.pack(">BBH", 0, 6, len(t))
    t = t[:16] + struct.pack(">H", csum(ps + t)) + t[18:]
    return ip(6, t, ident=slot)


def steered(slot, dseq, dack, flags, data=b"", opts=b"", win=65535, urp=0):
    return tcp(0, 0, dseq & 0xFFFF, dack & 0xFFFF, flags, data, opts, win, urp, slot)


def udp(sport, dport, data):
    u = struct.pack(">HHHH", sport, dport, 8 + len(data), 0) + data
    ps = PEER + US + struct.pack(">BBH", 0, 17, len(u))
    u = u[:6] + struct.pack(">H", csum(ps + u) or 0xFFFF) + u[8:]
    return ip(17, u)


def icmp_echo(data):
    m = struct.pack(">BBHHH", 8, 0, 0, 1, 1) + data
    m = m[:2] + struct.pack(">H", csum(m)) + m[4:]
    return ip(1, m)


def rec(ctl, act=NONE, slot=0, arg=0, pkt=b""):
    return struct.pack(">BBBH", ctl, act | (slot << 4), arg, len(pkt)) + pkt


def stack_seeds():
    d = b"D" * 100
    s = {}
    s["empty"] = b"\x00"
    s["data_in_and_read"] = b"\x00" + rec(FIX | STEER, RECV, CONN, 0,
                                          steered(CONN, 0, 0, ACK | PSH, d))
    # The peer acknowledges "hello" from the setup; we send 1000 bytes;
    # the peer acknowledges everything sent (ACK relative to SND.NXT).
    s["data_out_acked"] = b"\x00" + rec(FIX | STEER | T1MS, SEND, CONN, 1000 // 16,
                                        steered(CONN, 0, 5, ACK)) + \
        rec(FIX | STEER | T40MS, NONE, CONN, 0, steered(CONN | NXT, 0, 0, ACK))
    # Fill the 4 KiB send buffer three times over, each time after an ACK
    # of everything sent: the ring wraps.
    s["ring_wrap"] = b"\x00" + b"".join(
        rec(FIX | STEER | T40MS, SEND, CONN, 180, steered(CONN | NXT, 0, 0, ACK))
        for k in range(6))
    # The peer's window closes: persist probes, then it opens again.
    s["zero_window"] = b"\x00" + rec(FIX | STEER, SEND, CONN, 125,
                                     steered(CONN | NXT, 0, 0, ACK, win=0)) + \
        rec(T1S) + rec(T3S) + rec(T60S) + rec(FIX | STEER, NONE, CONN, 0,
                                             steered(CONN | NXT, 0, 0, ACK))
    s["out_of_order"] = b"\x00" + rec(FIX | STEER, NONE, CONN, 0,
                                      steered(CONN, 200, 0, ACK, d)) + \
        rec(FIX | STEER, NONE, CONN, 0, steered(CONN, 100, 0, ACK, d)) + \
        rec(FIX | STEER, RECV, CONN, 0, steered(CONN, 0, 0, ACK, d))
    s["batch_of_three"] = b"\x00" + rec(FIX | STEER | BATCH, NONE, CONN, 0,
                                        steered(CONN, 0, 0, ACK, d)) + \
        rec(FIX | STEER | BATCH, NONE, CONN, 0, steered(CONN, 100, 0, ACK, d)) + \
        rec(FIX | STEER, RECV, CONN, 0, steered(CONN, 200, 0, ACK, d))
    s["peer_closes"] = b"\x00" + rec(FIX | STEER | T1MS, RECV, CONN, 0,
                                     steered(CONN, 0, 5, ACK | FIN)) + \
        rec(T200MS, CLOSE, CONN) + rec(FIX | STEER | T60S, NONE, CONN, 0, steered(CONN, 1, 6, ACK))
    s["we_close_first"] = b"\x00" + rec(T1MS, CLOSE, CONN) + \
        rec(FIX | T1S, NONE, 0, 0, tcp(40000, 80, 5001, 0, ACK | FIN)) + rec(T2H)
    s["abort_and_rst"] = b"\x00" + rec(FIX | STEER, ABORT, CONN, 0, steered(ACTIVE, 0, 0, RST))
    s["syn_with_options"] = b"\x07" + rec(
        FIX | T1S, ACCEPT, 4, 0,
        tcp(40002, 80, 9000, 0, SYN, opts=MSS_1460 + WS_7 + SACK_OK + ts(1, 0))) + rec(T3S)
    s["handshake_ws_ts_sack"] = b"\x07" + rec(FIX | STEER | FIX_TS | T1MS, RECV, CONN, 0,
                                              steered(CONN, 0, 0, ACK | PSH, d, ts(0, 0))) + \
        rec(FIX | STEER | FIX_TS | T40MS, SEND, CONN, 0, steered(CONN, 100, 0, ACK, d, ts(0, 0)))
    # Four segments out; the peer SACKs the second and fourth (block edges
    # relative to SND.UNA) with three duplicate ACKs.
    sack = b"\x01\x01\x05\x12" + struct.pack(">IIII", 1465, 2925, 4385, 5845)
    s["sack_blocks_from_peer"] = b"\x04" + rec(FIX | STEER, NONE, CONN, 0,
                                                steered(CONN, 0, 5, ACK)) + \
        rec(FIX | STEER | T1MS, SEND, CONN, 0, b"\0" * 3000) + \
        rec(FIX | STEER | T1MS, SEND, CONN, 0, b"\0" * 3000) + \
        b"".join(rec(FIX | STEER, NONE, CONN, 0, steered(CONN, 0, 0, ACK, opts=sack))
                 for k in range(3)) + rec(T1S)
    s["active_open_synack"] = b"\x00" + rec(
        FIX | STEER, SEND, ACTIVE, 0,
        steered(ACTIVE, 0, 1, SYN | ACK, opts=MSS_1460 + WS_7 + SACK_OK + ts(5, 0)))
    s["connect_and_listen"] = b"\x00" + rec(T1MS, CONNECT, 5, 99) + rec(T1MS, LISTEN, 6, 81) + \
        rec(FIX | T1MS, ACCEPT, 7, 0, tcp(40003, 81, 1, 0, SYN, opts=MSS_1460)) + rec(T3S)
    s["setopts"] = b"\x00" + b"".join(rec(T1MS, SETOPT, CONN, a) for a in
                                      (0x10, 0x11, 0x12, 0x23, 0x54, 0x96, 0x17, 0x18, 0x19)) + \
        rec(T1MS, QUERY, CONN)
    s["urgent_both_ways"] = b"\x00" + rec(FIX | STEER, URGQ, CONN, 0,
                                          steered(CONN, 0, 0, ACK | URGF | PSH, d, urp=10)) + \
        rec(T1MS, URG, CONN, 0, b"urgent!")
    s["udp_and_icmp"] = b"\x00" + rec(0, URECV, UDP, 0, udp(5000, 53, b"query")) + \
        rec(0, USEND, UDP, 9, icmp_echo(b"ping" * 8)) + rec(0, NONE, 0, 0, udp(5000, 54, b"x"))
    frag1 = udp(5000, 53, b"F" * 64)
    s["ip_fragments"] = b"\x00" + rec(0, NONE, 0, 0, ip(17, frag1[20:52], ident=7, frag=0x2000)) + \
        rec(FIX_IP, URECV, UDP, 0, ip(17, frag1[52:], ident=7, frag=4))
    s["keepalive_timeout"] = b"\x00" + rec(T2H) + rec(T60S) + rec(T60S) + rec(T2H)
    return s


# fuzz_simnet header: see the top of fuzz/fuzz_simnet.c
def simnet(seed=1, loss=0, dup=0, reorder=0, corrupt=0, delay=5, jitter=0, bw=0, queue=255,
           a_bytes=20000, b_bytes=20000, a_bufs=0x3f, b_bufs=0x3f, a_mss=0, b_mss=0,
           ending=0, abort_at=0, fates=b""):
    h = struct.pack("<Q", seed) + bytes([loss, dup, reorder, corrupt, delay, jitter, bw, queue])
    h += struct.pack(">HH", a_bytes // 2, b_bytes // 2)
    h += bytes([a_bufs, b_bufs, a_mss, b_mss, ending]) + struct.pack(">H", abort_at // 8)
    assert len(h) == 27
    return h + fates


DELIVER, DROP, DUP, HOLD, DELAY, CORRUPT = 0x00, 0x80, 0xa0, 0xc0, 0xe0, 0xf0


def simnet_seeds():
    s = {}
    s["clean_both_ways"] = simnet()
    s["beyond_the_buffers"] = simnet(a_bytes=131070, b_bytes=100000, a_bufs=0x12, b_bufs=0x09)
    # B reads 64 bytes every 10 ms from a 512-byte buffer: zero windows.
    s["slow_reader_zero_window"] = simnet(a_bytes=60000, b_bytes=0, b_bufs=0x80 | 0x00,
                                          b_mss=(2 << 3) | 1)
    s["nodelay_small_mss"] = simnet(a_bufs=0x40 | 0x1b, b_bufs=0x40 | 0x24, a_mss=2, b_mss=3)
    for e, name in enumerate(("both", "a_first", "b_first", "a_aborts", "b_aborts",
                              "a_closes", "b_closes")):
        s["ending_" + name] = simnet(ending=e, abort_at=12000, a_bufs=0x09, b_bufs=0x09)
    lossy = bytes([DELIVER] * 10 + [DROP] + [DELIVER] * 5 + [DROP, DROP, DROP] + [DELIVER] * 20)
    s["steered_losses"] = simnet(a_bytes=40000, b_bytes=0, fates=lossy)
    mix = bytes([DELIVER, DUP, DELIVER, HOLD | 5, DELIVER, DELIVER, CORRUPT, 30, 0x40, DELIVER,
                 DELAY | 6, DELIVER, DROP, DUP, HOLD | 31] * 8)
    s["steered_mix"] = simnet(fates=mix)
    s["syn_lost_then_corrupted"] = simnet(fates=bytes([DROP, DROP, CORRUPT, 13, 0x01]))
    s["prng_lossy_link"] = simnet(seed=7, loss=40, dup=20, reorder=20, corrupt=10, jitter=3)
    s["bottleneck_small_queue"] = simnet(bw=10, queue=4, a_bytes=80000, b_bytes=2000)
    s["long_stall"] = simnet(fates=bytes([DELIVER] * 6 + [DELAY | 15] * 4 + [DELIVER] * 4))
    return s


def write(dirname, seeds):
    path = os.path.join(TOP, "fuzz", "corpus", dirname)
    os.makedirs(path, exist_ok=True)
    for f in os.listdir(path):
        os.unlink(os.path.join(path, f))
    for name, data in sorted(seeds.items()):
        with open(os.path.join(path, name), "wb") as f:
            f.write(data)
    return len(seeds)


if __name__ == "__main__":
    n = write("fuzz_stack", stack_seeds()) + write("fuzz_simnet", simnet_seeds())
    print(f"{n} seeds written", file=sys.stderr)
