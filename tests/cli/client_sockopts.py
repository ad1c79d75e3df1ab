#!/usr/bin/env python3
"""Every client command takes the tutorial's socket options (issue 13,
"Every command alike"), and they reach the socket.

Each client runs once against its own server on 127.0.0.1 with
--nodelay --sndbuf 64k --ttl 9 (udp-chat: --sndbuf 64k --ttl 9; TCP_NODELAY
is refused there, as UDP has no Nagle). An LD_PRELOAD shim
(tests/cli/sockopt_shim.c) asks the kernel with getsockopt, at the first
connect or send of each IPv4/IPv6 socket, what the socket has, and logs one
line. The kernel doubles SO_SNDBUF (socket(7)): 64 KiB reads back as
131072.

Usage: client_sockopts.py SHIM.so   (SOCKSTACK: the CLI)
"""
import os
import re
import subprocess
import sys
import tempfile
import time

SS = os.environ.get("SOCKSTACK", "sockstack")
SHIM = os.path.abspath(sys.argv[1])
OPTS = ["--nodelay", "--sndbuf", "64k", "--ttl", "9"]
TCP_WANT = "tcp nodelay=1 sndbuf=131072 ttl=9 dst=127.0.0.1"
UDP_WANT = "udp nodelay=- sndbuf=131072 ttl=9 dst=127.0.0.1"

servers = []
failures = []


def serve(*args):
    """Start `sockstack serve ...` on 127.0.0.1 port 0; its port."""
    p = subprocess.Popen([SS, "serve", *args, "-b", "127.0.0.1", "--port", "0"],
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, text=True)
    servers.append(p)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        line = p.stderr.readline()
        if not line:
            break
        m = re.search(r"listening on 127\.0\.0\.1:(\d+)", line)
        if m:
            return m.group(1)
    raise SystemExit("FAIL: serve %s did not start" % " ".join(args))


def client(name, argv, stdin=b"", want=TCP_WANT, log_dir=None):
    """Run one client under the shim; check its exit status and the log."""
    log = os.path.join(log_dir, name + ".log")
    env = dict(os.environ)
    env["LD_PRELOAD"] = SHIM
    env["SS_SOCKOPT_LOG"] = log
    # The shim comes before the sanitizer runtime in the list of libraries.
    env["ASAN_OPTIONS"] = env.get("ASAN_OPTIONS", "") + ":verify_asan_link_order=0"
    r = subprocess.run([SS, *argv], input=stdin, env=env, capture_output=True, timeout=60,
                       cwd=log_dir)
    got = open(log).read().splitlines() if os.path.exists(log) else []
    if r.returncode != 0:
        failures.append("%s: exit %d: %s" % (name, r.returncode, r.stderr.decode()[-500:]))
    elif got != [want]:
        failures.append("%s: sockets seen %r, want [%r]" % (name, got, want))
    else:
        print("ok   %-9s %s" % (name, got[0]))
    return r


def main():
    d = tempfile.mkdtemp(prefix="ss-client-sockopts-")
    try:
        key = os.path.join(d, "key")
        subprocess.run([SS, "keygen", key], check=True, capture_output=True)
        root = os.path.join(d, "root")
        os.mkdir(root)
        with open(os.path.join(root, "there.txt"), "w") as f:
            f.write("on the server\n")
        with open(os.path.join(d, "here.txt"), "w") as f:
            f.write("from the client\n")
        echo = serve("echo")
        exe = serve("exec", "--key-file", key)
        files = serve("files", "--root", root, "--key-file", key)
        chat = serve("chat", "--db", os.path.join(d, "chat.db"))
        udp = serve("udp-chat")

        r = client("connect", ["connect", "127.0.0.1", echo, *OPTS], b"ping\n", log_dir=d)
        if r.returncode == 0 and r.stdout != b"ping\n":
            failures.append("connect: echoed %r" % r.stdout)
        r = client("exec", ["exec", "127.0.0.1", exe, "--key-file", key, *OPTS, "--",
                            "echo", "ran"], log_dir=d)
        if r.returncode == 0 and r.stdout != b"ran\n":
            failures.append("exec: printed %r" % r.stdout)
        client("put", ["put", "127.0.0.1", files, "--key-file", key, *OPTS, "here.txt"],
               log_dir=d)
        if open(os.path.join(root, "here.txt")).read() != "from the client\n":
            failures.append("put: the file did not arrive")
        client("get", ["get", "127.0.0.1", files, "--key-file", key, *OPTS, "there.txt"],
               log_dir=d)
        if open(os.path.join(d, "there.txt")).read() != "on the server\n":
            failures.append("get: the file did not arrive")
        r = client("ls", ["ls", "127.0.0.1", files, "--key-file", key, *OPTS], log_dir=d)
        if r.returncode == 0 and b"there.txt" not in r.stdout:
            failures.append("ls: listed %r" % r.stdout)
        client("chat", ["chat", "127.0.0.1", chat, "--name", "bot", *OPTS], b"hello\n",
               log_dir=d)
        # The same for chat with --server (the failover list).
        client("chat-srv", ["chat", "--server", "127.0.0.1:" + chat, "--name", "bot2", *OPTS],
               b"hello\n", log_dir=d)
        client("udp-chat", ["udp-chat", "127.0.0.1", udp, "--name", "bot", "--sndbuf", "64k",
                            "--ttl", "9", "--linger", "0"], b"hello\n", want=UDP_WANT, log_dir=d)
        # udp-chat refuses the TCP-only option, naming it.
        r = subprocess.run([SS, "udp-chat", "127.0.0.1", udp, "--name", "bot", "--nodelay"],
                           input=b"", capture_output=True, timeout=30)
        if r.returncode != 1 or b"--nodelay" not in r.stderr:
            failures.append("udp-chat --nodelay: exit %d, %r" % (r.returncode, r.stderr))
        else:
            print("ok   udp-chat --nodelay refused: %s" % r.stderr.decode().strip())
    finally:
        for p in servers:
            p.terminate()
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        subprocess.run(["rm", "-rf", d])
    for f in failures:
        print("FAIL " + f)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
