#!/usr/bin/env python3
"""Drive headless chromium over the DevTools protocol (--remote-debugging-pipe:
NUL-terminated JSON on fds 3 and 4; Python's standard library only).

    cdp.py CHROMIUM PROFILE_DIR URL [INDEX...]

Opens URL in a new page with the Network domain on, then for each INDEX
scrubs the viewer there (show(INDEX)) and prints
"at INDEX: <state-a>|<state-b>|<pos>|<A's lit box>|<B's lit box>".
Other steps: "slide:N" moves the range input to N and fires its input
event, as a user's drag does; "next"/"prev" click the buttons; "table"
prints the header table, one "  field = value" line a row; "zoom:ID"
turns the mouse wheel once (up: zoom in) over the middle of the visible
part of the SVG in #ID and prints "zoom:ID: VIEWBOX -> VIEWBOX";
"reset:ID" double-clicks there and prints "reset:ID: VIEWBOX". Last, every
request the page made: "request: URL" lines, then "done". Exit 0, or 1 with
a message on stderr."""
import json
import os
import select
import subprocess
import sys
import time


def main():
    chrome, profile, url = sys.argv[1:4]
    steps = sys.argv[4:]
    to_chrome_r, to_chrome_w = os.pipe()
    from_chrome_r, from_chrome_w = os.pipe()

    def fds():
        # Out of the way first: a pipe may already sit on 3 or 4.
        a, b = os.dup(to_chrome_r), os.dup(from_chrome_w)
        os.dup2(a, 3)
        os.dup2(b, 4)
        os.set_inheritable(3, True)
        os.set_inheritable(4, True)

    proc = subprocess.Popen(
        [chrome, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--user-data-dir=" + profile, "--remote-debugging-pipe", "about:blank"],
        preexec_fn=fds, close_fds=False,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.close(to_chrome_r)
    os.close(from_chrome_w)
    buf = b""
    events = []
    next_id = [0]

    def send(method, params=None, session=None):
        next_id[0] += 1
        msg = {"id": next_id[0], "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(to_chrome_w, json.dumps(msg).encode() + b"\0")
        return next_id[0]

    def read_msg(deadline):
        nonlocal buf
        while b"\0" not in buf:
            left = deadline - time.time()
            if left <= 0 or not select.select([from_chrome_r], [], [], left)[0]:
                return None
            chunk = os.read(from_chrome_r, 65536)
            if not chunk:
                return None
            buf += chunk
        raw, buf = buf.split(b"\0", 1)
        return json.loads(raw)

    def call(method, params=None, session=None, timeout=20):
        want = send(method, params, session)
        deadline = time.time() + timeout
        while True:
            m = read_msg(deadline)
            if m is None:
                raise SystemExit("no answer to " + method)
            if m.get("id") == want:
                if "error" in m:
                    raise SystemExit(method + ": " + json.dumps(m["error"]))
                return m.get("result", {})
            events.append(m)

    try:
        target = call("Target.createTarget", {"url": "about:blank"})["targetId"]
        sid = call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        call("Network.enable", {}, sid)
        call("Page.enable", {}, sid)
        call("Page.navigate", {"url": url}, sid)
        deadline = time.time() + 20
        while not any(e.get("method") == "Page.loadEventFired" for e in events):
            m = read_msg(deadline)
            if m is None:
                raise SystemExit("the page did not load")
            events.append(m)
        expr = ("[document.getElementById('state-a').textContent,"
                "document.getElementById('state-b').textContent,"
                "document.getElementById('pos').textContent,"
                "(document.querySelector('#fsm rect.a')||{id:''}).id,"
                "(document.querySelector('#fsm rect.b')||{id:''}).id].join('|')")
        table = ("Array.from(document.querySelectorAll('#hdr tr')).map(r=>'  '+"
                 "r.cells[0].textContent+' = '+r.cells[1].textContent).join('\\n')")
        def viewbox(ident):
            js = "document.querySelector('#%s svg').getAttribute('viewBox')" % ident
            return call("Runtime.evaluate", {"expression": js, "returnByValue": True},
                        sid)["result"]["value"]

        def middle(ident):
            js = ("(()=>{const s=document.querySelector('#%s svg');"
                  "s.scrollIntoView({block:'center'});const r=s.getBoundingClientRect();"
                  "return [(Math.max(r.left,0)+Math.min(r.right,innerWidth))/2,"
                  "(Math.max(r.top,0)+Math.min(r.bottom,innerHeight))/2];})()" % ident)
            return call("Runtime.evaluate", {"expression": js, "returnByValue": True},
                        sid)["result"]["value"]

        def mouse(kind, xy, **extra):
            params = {"type": kind, "x": xy[0], "y": xy[1]}
            params.update(extra)
            call("Input.dispatchMouseEvent", params, sid)

        def changed(ident, old):
            # The page answers an input event in its own task: wait for it.
            deadline = time.time() + 10
            while time.time() < deadline:
                now = viewbox(ident)
                if now != old:
                    return now
                time.sleep(0.05)
            raise SystemExit("the viewBox of #%s stayed %s" % (ident, old))

        for step in steps:
            if step.startswith("zoom:"):
                ident = step[5:]
                before, xy = viewbox(ident), middle(ident)
                mouse("mouseWheel", xy, deltaX=0, deltaY=-120)
                print("%s: %s -> %s" % (step, before, changed(ident, before)))
                continue
            if step.startswith("reset:"):
                ident = step[6:]
                before, xy = viewbox(ident), middle(ident)
                for count in (1, 2):
                    mouse("mousePressed", xy, button="left", clickCount=count)
                    mouse("mouseReleased", xy, button="left", clickCount=count)
                print("%s: %s" % (step, changed(ident, before)))
                continue
            if step == "table":
                js, label = table, None
            elif step.startswith("slide:"):
                n = int(step[6:])
                js = ("(()=>{const s=document.getElementById('scrub');s.value=%d;"
                      "s.dispatchEvent(new Event('input'));})();%s" % (n, expr))
                label = step
            elif step in ("next", "prev"):
                js = "document.getElementById('%s').click();%s" % (step, expr)
                label = step
            else:
                js, label = "show(%d);%s" % (int(step), expr), "at " + step
            r = call("Runtime.evaluate", {"expression": js, "returnByValue": True}, sid)
            value = r["result"].get("value")
            if value is None:
                raise SystemExit("%s: %s" % (step, json.dumps(r)))
            print(value if label is None else "%s: %s" % (label, value))
        # Anything the page might still fetch has had a second to start.
        deadline = time.time() + 1
        while True:
            m = read_msg(deadline)
            if m is None:
                break
            events.append(m)
        for e in events:
            if e.get("method") == "Network.requestWillBeSent":
                print("request: " + e["params"]["request"]["url"])
        print("done")
    finally:
        try:
            send("Browser.close")
        except OSError:
            pass
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


if __name__ == "__main__":
    main()
