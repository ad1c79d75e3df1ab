#!/usr/bin/env bash
# make run: the main job. Two user-space TCP/IP stacks talk over a simulated
# link that loses 5% of the packets; seed 9 makes the link lose A's first SYN,
# so the trace shows the handshake, a retransmission (marked [rtx]), the
# transfer, the FIN exchange and TIME-WAIT, then a summary whose SHA-256
# digests prove every byte arrived once and in order. Virtual time: it runs
# in milliseconds, needs no privileges and touches no real network.
set -euo pipefail
bin=${1:?usage: run-demo.sh PATH_TO_SOCKSTACK}
echo "\$ sockstack stack demo --loss 5 --seed 9 --bytes 8K"
"$bin" stack demo --loss 5 --seed 9 --bytes 8K
echo
echo "More: sockstack stack diagram --loss 5 --seed 9 --svg conn.svg --plot plots.svg"
echo "      sockstack stack demo --help    (delay, jitter, bandwidth, reordering, ...)"
