#!/usr/bin/env python3
"""Replace (or add) section `## NAME` of bench/RESULTS.md with stdin."""
import os, re, sys

name = sys.argv[1]
path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "RESULTS.md")
body = sys.stdin.read().rstrip() + "\n"
text = open(path).read() if os.path.exists(path) else "# Benchmark results\n\nWritten by `make bench` (bench/*/run); figures from one machine, one run.\n"
pat = re.compile(r"^## %s\n.*?(?=^## |\Z)" % re.escape(name), re.S | re.M)
section = "## %s\n\n%s\n" % (name, body)
text = pat.sub(lambda m: section, text) if pat.search(text) else text.rstrip() + "\n\n" + section
open(path, "w").write(text)
