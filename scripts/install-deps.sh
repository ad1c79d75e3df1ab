#!/usr/bin/env bash
# Installs every Debian package sockstack needs to build, test and benchmark.
# Idempotent: packages already installed are skipped, and apt is not touched
# at all when nothing is missing.
set -euo pipefail

PKGS=(
  # build
  build-essential meson ninja-build pkg-config
  # libraries (see DESIGN.md: the field's libraries, not hand-written copies)
  libssl-dev libsqlite3-dev libpcap-dev libncurses-dev libjansson-dev
  libcriterion-dev
  # TUN writes batched in one system call (the stack's tunnet, bench/stack)
  liburing-dev
  # fuzzing (libFuzzer runtime for clang)
  clang libclang-rt-14-dev
  # real peers and tools used by tests and benchmarks
  python3 openssl ncat socat tshark iproute2 iputils-ping procps tmux sockperf
  # IRC clients for the chat server's IRC tests (issue 15)
  irssi weechat-headless weechat-plugins
  nftables
  # the viewer's test: a real browser, headless (Debian's package)
  chromium chromium-driver
  libzmq3-dev
  # chat across nodes (issue 14): the Redis server the tests start, hiredis
  redis-server libhiredis-dev
)

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" \
    || missing+=("$p")
done

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

echo "install-deps: installing ${missing[*]}" >&2
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "install-deps: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
  SUDO=sudo
fi
export DEBIAN_FRONTEND=noninteractive
# tshark asks whether non-root users may capture; answer once, non-interactively.
echo "wireshark-common wireshark-common/install-setuid boolean false" | $SUDO debconf-set-selections
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
