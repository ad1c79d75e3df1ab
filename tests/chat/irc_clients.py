#!/usr/bin/env python3
"""IRC on the chat server with real clients from Debian's packages (issue 15).

Started here, stopped here by PID (tmux by its own session name):
  - `sockstack serve chat --irc-port 0` on 127.0.0.1, a scratch db;
  - irssi in tmux (typed to with send-keys; read through its autolog files);
  - WeeChat headless, driven through its FIFO (read through its logger);
  - the native client, `sockstack chat --plain`, on pipes.
Checks: all three in #lobby; channel and private messages between each
pair; presence (join, quit); an offline message stored for carol arrives
in WeeChat (SASL login) stamped with the time it was sent (server-time),
not the time it was delivered; a DCC SEND of 20 MiB from irssi to WeeChat
arrives with an equal SHA-256; a DCC SEND from irssi to the native user
arrives as a native file offer the native client takes; a native /send
to the WeeChat user arrives over DCC sent by the server; a passive (reverse) DCC SEND, port 0 and a
token, from irssi to a second irssi arrives with an equal SHA-256 (WeeChat
3.8 cannot take a passive DCC: it reads "1.1.1.1 0" as part of the name).

Exit 77 (meson: skipped) with the reason when a client is missing.
Every wait is for exact text with a deadline; the only sleep puts two
seconds between sending the offline message and delivering it, so that
the two times are told apart.
"""
import datetime
import hashlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

SOCKSTACK = os.environ.get("SOCKSTACK", "sockstack")
FIFO_PLUGIN = "/usr/lib/x86_64-linux-gnu/weechat/plugins/fifo.so"


def skip(why):
    print("SKIP: " + why)
    sys.exit(77)


for tool in ("irssi", "weechat-headless", "tmux"):
    if not shutil.which(tool):
        skip(f"{tool} is not installed (scripts/install-deps.sh installs it)")
if not os.path.exists(FIFO_PLUGIN):
    skip("WeeChat's fifo plugin is missing (package weechat-plugins)")

failures = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        failures.append(what)
    return cond


def wait_for(fn, what, timeout=20.0):
    """Poll fn() until it is true (returns its value) or fail what."""
    end = time.time() + timeout
    while time.time() < end:
        v = fn()
        if v:
            check(True, what)
            return v
        time.sleep(0.1)
    check(False, what)
    return None


def read(path):
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8", "replace")
    except OSError:
        return ""


class Native:
    """The native client in line mode; everything it prints is kept."""

    def __init__(self, port, nick, d):
        self.p = subprocess.Popen([SOCKSTACK, "chat", "127.0.0.1", str(port), "--name", nick,
                                   "--plain", "--dir", d], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.out = ""
        self.lock = threading.Lock()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self):
        for raw in self.p.stdout:
            with self.lock:
                self.out += raw.decode("utf-8", "replace")

    def text(self):
        with self.lock:
            return self.out

    def say(self, line):
        self.p.stdin.write((line + "\n").encode())
        self.p.stdin.flush()


def main():
    tmp = tempfile.mkdtemp(prefix="ss-irc-clients-")
    procs = []
    session = f"ss-irc-{os.getpid()}"
    env = dict(os.environ, TZ="UTC")
    try:
        run(tmp, procs, session, env)
    finally:
        for sess in (session, session + "-b"):
            subprocess.run(["tmux", "kill-session", "-t", sess], stderr=subprocess.DEVNULL)
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(5)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"{0 if failures else 1} passed, {len(failures)} failed")
    sys.exit(1 if failures else 0)


def run(tmp, procs, session, env):
    # ---- the server ----
    srv = subprocess.Popen([SOCKSTACK, "serve", "chat", "-b", "127.0.0.1", "--port", "0",
                            "--irc-port", "0", "--db", f"{tmp}/chat.db", "--pbkdf2-iter",
                            "1000", "--grace", "0"], stderr=subprocess.PIPE)
    procs.append(srv)
    irc_port = nat_port = None
    while not (irc_port and nat_port):
        line = srv.stderr.readline().decode()
        if not line:
            check(False, "server started")
            return
        if "chat: IRC on 127.0.0.1:" in line:
            irc_port = int(line.split("127.0.0.1:")[1].split()[0])
        if "listening on 127.0.0.1:" in line:
            nat_port = int(line.split("127.0.0.1:")[1].split()[0])
    threading.Thread(target=lambda: srv.stderr.read(), daemon=True).start()

    # ---- carol is registered; nat leaves her a message while she is away ----
    s = socket.create_connection(("127.0.0.1", nat_port))
    s.sendall(b"/nick carol\n/register secret1\n/quit\n")
    buf = b""
    while b"BYE" not in buf:
        d = s.recv(4096)
        if not d:
            break
        buf += d
    s.close()
    check(b"OK register carol" in buf, "carol registered natively")
    nat = Native(nat_port, "nat", tmp)
    procs.append(nat.p)
    wait_for(lambda: "you are nat" in nat.text(), "native client joined")
    sent_at = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    nat.say("/msg carol left while you were out")
    wait_for(lambda: "stored" in nat.text(), "offline message stored for carol")
    time.sleep(2.0)  # so that "sent" and "delivered" are different seconds

    # ---- WeeChat, as carol with SASL PLAIN ----
    wd = f"{tmp}/wee"
    os.makedirs(f"{wd}/dl")
    fifo = f"{wd}/fifo"
    cmds = "; ".join([
        "/set logger.file.flush_delay 0", f"/set logger.file.path {wd}/logs",
        f"/set fifo.file.path {fifo}", "/set fifo.file.enabled on",
        "/set xfer.file.auto_accept_files on", f"/set xfer.file.download_path {wd}/dl",
        f"/server add sock 127.0.0.1/{irc_port}", "/set irc.server.sock.nicks carol",
        "/set irc.server.sock.autojoin #lobby",
        "/set irc.server.sock.capabilities server-time,echo-message,away-notify",
        "/set irc.server.sock.sasl_mechanism plain",
        "/set irc.server.sock.sasl_username carol",
        "/set irc.server.sock.sasl_password secret1", "/connect sock"])
    wee = subprocess.Popen(["weechat-headless", "--dir", wd, "-r", cmds], env=env,
                           stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    procs.append(wee)
    wlog = lambda name: read(f"{wd}/logs/irc.sock.{name}.weechatlog")
    wait_for(lambda: "carol (carol@sockstack) has joined #lobby" in wlog("#lobby"),
             "WeeChat (SASL as carol) joined #lobby")
    line = wait_for(lambda: next((l for l in wlog("nat").splitlines()
                                  if "left while you were out" in l), None),
                    "WeeChat got the offline message")
    if line:
        stamp = datetime.datetime.strptime(line.split("\t")[0], "%Y-%m-%d %H:%M:%S").replace(
            tzinfo=datetime.timezone.utc)
        check(abs((stamp - sent_at).total_seconds()) <= 1.0,
              f"offline message shown at its original time {stamp} (sent {sent_at})")

    def wee_cmd(buffer, text):
        with open(fifo, "w") as f:
            f.write(f"{buffer} *{text}\n")

    # ---- irssi in tmux, as alice ----
    def start_irssi(sess, nick, home):
        """irssi as nick in tmux session sess: autolog in home/logs,
        downloads in home/dl."""
        os.makedirs(f"{home}/logs")
        os.makedirs(f"{home}/dl")
        with open(f"{home}/config", "w") as f:
            f.write(f'settings = {{\n  core = {{ real_name = "{nick}"; user_name = "{nick}"; '
                    f'nick = "{nick}"; }};\n  "fe-common/core" = {{ autolog = "yes"; '
                    f'autolog_path = "{home}/logs/$0.log"; autolog_level = "all"; }};\n'
                    f'  "irc/dcc" = {{ dcc_download_path = "{home}/dl"; }};\n}};\n')
        subprocess.run(["tmux", "new-session", "-d", "-s", sess, "-x", "200", "-y", "50",
                        f"TZ=UTC irssi --home={home} -c 127.0.0.1 -p {irc_port} -n {nick}"],
                       check=True)

    idir = f"{tmp}/irssi"
    start_irssi(session, "alice", idir)
    ilog = lambda name: read(f"{idir}/logs/{name}.log")

    def irssi(text, sess=session):
        subprocess.run(["tmux", "send-keys", "-t", sess, "-l", text], check=True)
        subprocess.run(["tmux", "send-keys", "-t", sess, "Enter"], check=True)

    def screen(sess):
        return subprocess.run(["tmux", "capture-pane", "-p", "-t", sess], capture_output=True,
                              text=True).stdout

    wait_for(lambda: "Welcome to the sockstack chat" in
             subprocess.run(["tmux", "capture-pane", "-p", "-t", session],
                            capture_output=True, text=True).stdout, "irssi registered")
    irssi("/join #lobby")
    wait_for(lambda: "alice (alice@sockstack) has joined #lobby" in wlog("#lobby"),
             "WeeChat sees alice join (presence)")
    wait_for(lambda: "-- alice joined" in nat.text(), "the native client sees alice join")

    # ---- channel messages, each pair ----
    irssi("hello from irssi")
    wait_for(lambda: "alice\thello from irssi" in wlog("#lobby"), "irssi -> WeeChat (#lobby)")
    wait_for(lambda: "<alice> hello from irssi" in nat.text(), "irssi -> native (#lobby)")
    wee_cmd("irc.sock.#lobby", "hello from weechat")
    wait_for(lambda: "< carol> hello from weechat" in ilog("#lobby"), "WeeChat -> irssi (#lobby)")
    wait_for(lambda: "<carol> hello from weechat" in nat.text(), "WeeChat -> native (#lobby)")
    nat.say("hello from native")
    wait_for(lambda: "< nat> hello from native" in ilog("#lobby"), "native -> irssi (#lobby)")
    wait_for(lambda: "nat\thello from native" in wlog("#lobby"), "native -> WeeChat (#lobby)")
    nat.say("/me waves")
    wait_for(lambda: "* nat waves" in ilog("#lobby"), "native /me -> irssi ACTION")
    irssi("/me nods")
    wait_for(lambda: "alice nods" in nat.text(), "irssi ACTION -> native /me")

    # ---- private messages, each pair ----
    irssi("/msg carol psst carol")
    wait_for(lambda: "alice\tpsst carol" in wlog("alice"), "irssi -> WeeChat (private)")
    wee_cmd("irc.server.sock", "/msg alice hi alice")
    wait_for(lambda: "<carol> hi alice" in ilog("carol"), "WeeChat -> irssi (private)")
    irssi("/msg nat psst nat")
    wait_for(lambda: "psst nat" in nat.text(), "irssi -> native (private)")
    nat.say("/msg alice from nat")
    wait_for(lambda: "<nat> from nat" in ilog("nat"), "native -> irssi (private)")
    wee_cmd("irc.server.sock", "/msg nat from carol")
    wait_for(lambda: "from carol" in nat.text(), "WeeChat -> native (private)")
    nat.say("/msg carol from nat to carol")
    wait_for(lambda: "nat\tfrom nat to carol" in wlog("nat"), "native -> WeeChat (private)")

    # ---- DCC SEND of 20 MiB, irssi -> WeeChat ----
    src = f"{tmp}/big.bin"
    want = random_file(src, 20)
    irssi(f"/dcc send carol {src}")
    arrived(f"{wd}/dl/alice.big.bin", 20, want, "DCC SEND irssi -> WeeChat", timeout=60)

    # ---- DCC SEND from irssi to the native user: fetched by the server,
    # offered as a native file, taken with /accept ----
    tonat = f"{tmp}/to-native.bin"
    want = random_file(tonat, 5)
    irssi(f"/dcc send nat {tonat}")
    offer = wait_for(lambda: re.search(r"-- alice offers to-native\.bin \((\d+) bytes, SHA-256 "
                                       r"([0-9a-f]{64})\): /accept (\d+)", nat.text()),
                     "DCC SEND to the native user became a native file offer", timeout=30)
    if offer:
        check(offer.group(1) == str(5 << 20) and offer.group(2) == want,
              "the offer has the size and SHA-256 of the file irssi sent")
        nat.say(f"/accept {offer.group(3)}")
        wait_for(lambda: "received file" in nat.text() and "SHA-256 verified" in nat.text(),
                 "the native client received it, SHA-256 verified", timeout=30)

    # ---- a native file offer to the WeeChat user: sent by the server
    # over DCC, auto-accepted by WeeChat ----
    n2i = f"{tmp}/from-native.bin"
    want = random_file(n2i, 3)
    nat.say(f"/send carol {n2i}")
    arrived(f"{wd}/dl/nat.from-native.bin", 3, want, "native /send -> WeeChat over DCC")

    # ---- passive (reverse) DCC SEND, irssi -> irssi ----
    bdir = f"{tmp}/irssi-b"
    start_irssi(session + "-b", "bobby", bdir)
    wait_for(lambda: "Welcome to the sockstack chat" in screen(session + "-b"),
             "second irssi (bobby) registered")
    small = f"{tmp}/passive.bin"
    want = random_file(small, 2)
    irssi(f"/dcc send -passive bobby {small}")
    wait_for(lambda: "DCC SEND from alice" in screen(session + "-b"),
             "bobby got the passive DCC SEND offer (port 0, token)")
    irssi("/dcc get alice", session + "-b")
    arrived(f"{bdir}/dl/passive.bin", 2, want, "passive DCC irssi -> irssi")

    # ---- presence: the native user leaves ----
    nat.say("/quit")
    wait_for(lambda: "nat [nat@sockstack] has quit" in ilog("#lobby"), "irssi sees nat quit")
    wait_for(lambda: "nat (nat@sockstack) has quit" in wlog("#lobby"), "WeeChat sees nat quit")


def random_file(path, mib):
    """mib MiB of random bytes at path; returns their SHA-256."""
    h = hashlib.sha256()
    with open(path, "wb") as f:
        for _ in range(mib):
            block = os.urandom(1 << 20)
            h.update(block)
            f.write(block)
    return h.hexdigest()


def arrived(path, mib, want, what, timeout=30):
    """Wait until path has mib MiB, then compare its SHA-256 with want."""
    def complete():
        try:
            return os.path.getsize(path) == mib << 20
        except OSError:
            return False
    wait_for(complete, f"{what}: {mib} MiB arrived", timeout=timeout)
    got = hashlib.sha256(read_bytes(path)).hexdigest() if os.path.exists(path) else ""
    check(got == want, f"{what}: SHA-256 equal ({got[:16]} == {want[:16]})")


def read_bytes(path):
    with open(path, "rb") as f:
        return f.read()


if __name__ == "__main__":
    main()
