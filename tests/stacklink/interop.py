#!/usr/bin/python3
"""Kernel-side peers for the TUN interop tests (run inside the test's netns).

  echo-client HOST PORT N   send N random bytes while reading the echo,
                            half-close, read to EOF; print both SHA-256
  read-all HOST PORT        read to EOF; print count and SHA-256
  server HOST MODE N        listen on HOST:0 (waits for HOST to exist), print
                            "listening on HOST:PORT (tcp)" on stderr, take one
                            connection: MODE echo: echo to EOF, then close;
                            MODE send-close: send N bytes and close first
  udp-echo HOST PORT        datagrams of several sizes must come back intact
  refused HOST PORT tcp|udp print the errno name the kernel reports
  reset HOST PORT           send one byte, read its echo, print "local PORT"
                            (ours), then close with RST (SO_LINGER 0)
Every result goes to stdout as "key value" lines.
"""
import errno
import hashlib
import os
import socket
import struct
import sys
import threading
import time


def sha(b):
    return hashlib.sha256(b).hexdigest()


def echo_client(host, port, n):
    s = socket.create_connection((host, port), timeout=60)
    data = os.urandom(n)
    got = bytearray()

    def reader():
        while True:
            b = s.recv(1 << 16)
            if not b:
                return
            got.extend(b)

    t = threading.Thread(target=reader)
    t.start()
    s.sendall(data)
    s.shutdown(socket.SHUT_WR)  # our FIN first: the kernel closes actively
    t.join()
    s.close()
    print("sent", len(data), sha(data))
    print("received", len(got), sha(bytes(got)))


def read_all(host, port):
    s = socket.create_connection((host, port), timeout=60)
    got = bytearray()
    while True:
        b = s.recv(1 << 16)
        if not b:
            break
        got.extend(b)
    s.close()
    print("received", len(got), sha(bytes(got)))


def server(host, mode, n):
    l = socket.socket()
    for _ in range(200):  # the TUN address appears when the stack is up
        try:
            l.bind((host, 0))
            break
        except OSError:
            time.sleep(0.02)
    l.listen(1)
    sys.stderr.write("listening on %s:%d (tcp)\n" % (host, l.getsockname()[1]))
    sys.stderr.flush()
    l.settimeout(60)
    c, _ = l.accept()
    c.settimeout(60)
    if mode == "echo":
        h = hashlib.sha256()
        total = 0
        while True:
            b = c.recv(1 << 16)
            if not b:
                break
            h.update(b)
            total += len(b)
            c.sendall(b)
        c.close()
        print("received", total, h.hexdigest())
    else:
        data = os.urandom(n)
        c.sendall(data)
        c.close()  # the kernel closes first: the stack's close is passive
        print("sent", len(data), sha(data))


def udp_echo(host, port):
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.settimeout(5)
    for size in (1, 100, 512, 1472):
        msg = os.urandom(size)
        u.sendto(msg, (host, port))
        back, src = u.recvfrom(65536)
        if back != msg or src != (host, port):
            print("udp mismatch", size)
            return
    print("udp ok")


def refused(host, port, proto):
    try:
        if proto == "tcp":
            socket.create_connection((host, port), timeout=5)
            print("error none")
        else:
            u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            u.settimeout(5)
            u.connect((host, port))
            u.send(b"anyone?")
            u.recv(100)
            print("error none")
    except OSError as e:
        print("error", errno.errorcode.get(e.errno, str(e)))


def reset(host, port):
    s = socket.create_connection((host, port), timeout=10)
    s.sendall(b"x")
    if s.recv(1) != b"x":
        print("no echo")
        return
    print("local", s.getsockname()[1])
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()


def main():
    a = sys.argv[1:]
    if a[0] == "echo-client":
        echo_client(a[1], int(a[2]), int(a[3]))
    elif a[0] == "read-all":
        read_all(a[1], int(a[2]))
    elif a[0] == "server":
        server(a[1], a[2], int(a[3]))
    elif a[0] == "udp-echo":
        udp_echo(a[1], int(a[2]))
    elif a[0] == "refused":
        refused(a[1], int(a[2]), a[3])
    elif a[0] == "reset":
        reset(a[1], int(a[2]))
    sys.stdout.flush()


main()
