#!/usr/bin/env bash
# make run: the main job. Two user-space TCP/IP stacks talk over a simulated
# link that loses 5% of the packets. With seed 35 the trace shows the
# three-way handshake, the transfer, A's FIN (with the last data) lost and
# retransmitted (marked [rtx]) after its RTO, then FIN-WAIT, LAST-ACK,
# TIME-WAIT and a summary whose SHA-256 digests prove every byte arrived
# once and in order. Virtual time: it runs
# in milliseconds, needs no privileges and touches no real network.
set -euo pipefail
bin=${1:?usage: run-demo.sh PATH_TO_SOCKSTACK}
echo "\$ sockstack stack demo --loss 5 --seed 35 --bytes 8K"
"$bin" stack demo --loss 5 --seed 35 --bytes 8K
echo
echo "More: sockstack stack diagram --loss 5 --seed 35 --bytes 8K --svg conn.svg --plot plots.svg"
echo "      sockstack stack demo --loss 5 --seed 35 --bytes 8K --html run.html   (the same run, in a browser)"
echo "      sockstack stack demo --help    (delay, jitter, bandwidth, reordering, ...)"
echo
bindir=$(cd "$(dirname "$bin")" && pwd)
echo "The binary is $bindir/sockstack. To type just 'sockstack':"
echo "      export PATH=\"$bindir:\$PATH\""
echo "   or install it: meson install -C $(dirname "$(dirname "$(dirname "$bin")")")   (README.md, \"Building by hand\")"
