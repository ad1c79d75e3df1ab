#!/usr/bin/python3
"""Kernel-side peers for the --stack tests (run inside the test's netns).

  line HOST PORT TEXT       send TEXT, half-close, print what comes back
                            until EOF (exact bytes, on stdout)
  echo-sha HOST PORT N      send N random bytes while reading the echo,
                            half-close, read to EOF; print
                            "sent N SHA" and "received M SHA"
  udp HOST PORT TEXT...     one datagram per TEXT, print each reply line
  server HOST LAST          listen on HOST:0, print "listening on HOST:PORT
                            (tcp)" on stderr, take one connection, read it
                            to EOF, then send "got N bytes SHA\\n" + LAST and
                            close
"""
import hashlib
import os
import socket
import sys
import threading


def sha(b):
    return hashlib.sha256(b).hexdigest()


def connect(host, port):
    return socket.create_connection((host, int(port)), timeout=20)


def read_all(s):
    got = bytearray()
    while True:
        b = s.recv(1 << 16)
        if not b:
            return bytes(got)
        got.extend(b)


def line(host, port, text):
    s = connect(host, port)
    s.sendall(text.encode())
    s.shutdown(socket.SHUT_WR)
    sys.stdout.buffer.write(read_all(s))


def echo_sha(host, port, n):
    s = connect(host, port)
    data = os.urandom(int(n))
    out = {}

    def reader():
        out["got"] = read_all(s)

    t = threading.Thread(target=reader)
    t.start()
    s.sendall(data)
    s.shutdown(socket.SHUT_WR)
    t.join()
    got = out["got"]
    print("sent %d %s" % (len(data), sha(data)))
    print("received %d %s" % (len(got), sha(got)))


def udp(host, port, *texts):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(5)
    for t in texts:
        s.sendto(t.encode(), (host, int(port)))
        reply, _ = s.recvfrom(65536)
        sys.stdout.write(reply.decode())


def server(host, last):
    l = socket.socket()
    l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    l.bind((host, 0))
    l.listen(1)
    sys.stderr.write("listening on %s:%d (tcp)\n" % (host, l.getsockname()[1]))
    sys.stderr.flush()
    l.settimeout(20)
    c, _ = l.accept()
    c.settimeout(20)
    data = read_all(c)
    c.sendall(b"got %d bytes %s\n" % (len(data), sha(data).encode()) + last.encode())
    c.close()
    print("server read %d" % len(data))


if __name__ == "__main__":
    {"line": line, "echo-sha": echo_sha, "udp": udp, "server": server}[sys.argv[1]](*sys.argv[2:])
