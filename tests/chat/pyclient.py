#!/usr/bin/python3
"""A foreign chat client for the tests: python3's socket module, nothing of ours.

usage: pyclient.py HOST PORT
stdin lines are sent as they are, except:
  SPLIT text   send "text\n" one byte per send() (TCP_NODELAY, 5 ms apart)
  RAW escaped  send the bytes of a Python bytes-escape string in ONE sendall
               (e.g. RAW one\\ntwo\\n, RAW \\xc3\\x28\\n)
  SLEEP secs   pause
Every line received is printed; "EOF" when the server closes.
"""
import codecs
import socket
import sys
import threading
import time

s = socket.create_connection((sys.argv[1], int(sys.argv[2])))
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def reader():
    f = s.makefile("rb")
    for line in f:
        sys.stdout.buffer.write(line)
        sys.stdout.flush()
    sys.stdout.write("EOF\n")
    sys.stdout.flush()


t = threading.Thread(target=reader, daemon=True)
t.start()
for line in sys.stdin.buffer:
    if line.startswith(b"SPLIT "):
        for b in line[6:]:
            s.send(bytes([b]))
            time.sleep(0.005)
    elif line.startswith(b"RAW "):
        s.sendall(codecs.escape_decode(line[4:].rstrip(b"\n"))[0])
    elif line.startswith(b"SLEEP "):
        time.sleep(float(line[6:]))
    else:
        s.sendall(line)
s.shutdown(socket.SHUT_WR)
t.join(5)
