#!/usr/bin/env bash
# make run: the main job. Starts the uppercase echo service on a free port,
# talks to it with the client, shows the exchange, and stops the server.
set -euo pipefail
bin=${1:?usage: run-demo.sh PATH_TO_SOCKSTACK}
echo "sockstack $("$bin" version | cut -d' ' -f2) — main job not yet wired; see README."
