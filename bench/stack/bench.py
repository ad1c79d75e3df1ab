#!/usr/bin/python3
"""Kernel-side load for bench/stack/run. Prints one "key value" line per result.

  send HOST PORT BYTES     connect, send BYTES, half-close, wait for the
                           peer's close; "seconds S" (time to the peer's EOF)
  recv HOST PORT           connect, read to EOF; "bytes N" "seconds S"
  sink ADDR                listen on ADDR:0 ("listening on ADDR:PORT (tcp)" on
                           stderr), accept one, read to EOF, close
  source ADDR BYTES        listen on ADDR:0, accept one, send BYTES, close
  echo-server ADDR         listen on ADDR:0, accept many, echo to EOF
  cps HOST PORT SECONDS    sequential connect + close for SECONDS;
                           "connections N" "seconds S"
  idle HOST PORT N         open N connections, print "ready", hold them
                           until stdin closes
"""
import socket
import sys
import threading
import time

CHUNK = bytes(1 << 20)


def send(host, port, n):
    s = socket.create_connection((host, port), timeout=120)
    t0 = time.monotonic()
    left = n
    while left:
        k = min(left, len(CHUNK))
        s.sendall(CHUNK[:k])
        left -= k
    s.shutdown(socket.SHUT_WR)
    while s.recv(65536):
        pass
    print("seconds %.6f" % (time.monotonic() - t0))


def recv(host, port):
    s = socket.create_connection((host, port), timeout=120)
    t0 = time.monotonic()
    n = 0
    buf = bytearray(1 << 20)
    while True:
        k = s.recv_into(buf)
        if not k:
            break
        n += k
    print("bytes %d" % n)
    print("seconds %.6f" % (time.monotonic() - t0))


def listener(addr):
    l = socket.socket()
    l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    l.bind((addr, 0))
    l.listen(512)
    sys.stderr.write("listening on %s:%d (tcp)\n" % (addr, l.getsockname()[1]))
    sys.stderr.flush()
    return l


def sink(addr):
    l = listener(addr)
    c, _ = l.accept()
    buf = bytearray(1 << 20)
    while c.recv_into(buf):
        pass
    c.close()


def source(addr, n):
    l = listener(addr)
    c, _ = l.accept()
    left = n
    while left:
        k = min(left, len(CHUNK))
        c.sendall(CHUNK[:k])
        left -= k
    c.close()


def echo_server(addr):
    l = listener(addr)

    def serve(c):
        while True:
            b = c.recv(65536)
            if not b:
                break
            c.sendall(b)
        c.close()

    while True:
        c, _ = l.accept()
        threading.Thread(target=serve, args=(c,), daemon=True).start()


def cps(host, port, seconds):
    n = 0
    t0 = time.monotonic()
    while time.monotonic() - t0 < seconds:
        s = socket.create_connection((host, port), timeout=10)
        s.shutdown(socket.SHUT_WR)
        s.recv(1)  # the server's FIN: the connection really completed
        s.close()
        n += 1
    print("connections %d" % n)
    print("seconds %.6f" % (time.monotonic() - t0))


def idle(host, port, n):
    socks = [socket.create_connection((host, port), timeout=10) for _ in range(n)]
    print("ready")
    sys.stdout.flush()
    sys.stdin.read()
    for s in socks:
        s.close()


a = sys.argv[1:]
{"send": lambda: send(a[1], int(a[2]), int(a[3])),
 "recv": lambda: recv(a[1], int(a[2])),
 "sink": lambda: sink(a[1]),
 "source": lambda: source(a[1], int(a[2])),
 "echo-server": lambda: echo_server(a[1]),
 "cps": lambda: cps(a[1], int(a[2]), float(a[3])),
 "idle": lambda: idle(a[1], int(a[2]), int(a[3]))}[a[0]]()
sys.stdout.flush()
