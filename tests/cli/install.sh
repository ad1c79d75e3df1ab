#!/bin/sh
# README's "Building by hand": `meson install` into a prefix, then the
# installed sockstack runs from that prefix (its rpath finds the installed
# library; no ldconfig, no LD_LIBRARY_PATH), and its man page is there.
# $1: the build directory. The DESTDIR is a temporary directory, removed.
set -eu
build=${1:?usage: install.sh BUILD_DIR}
dest=$(mktemp -d /tmp/sockstack-install.XXXXXX)
trap 'rm -rf "$dest"' EXIT INT TERM
meson install -C "$build" --no-rebuild --quiet --destdir "$dest" >"$dest.log" 2>&1 ||
    { cat "$dest.log"; rm -f "$dest.log"; exit 1; }
rm -f "$dest.log"
prefix=$(meson introspect "$build" --buildoptions |
    python3 -c 'import json,sys; print([o["value"] for o in json.load(sys.stdin) if o["name"]=="prefix"][0])')
bin="$dest$prefix/bin/sockstack"
[ -x "$bin" ] || { echo "not installed: $bin"; exit 1; }
version=$(meson introspect "$build" --projectinfo |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["version"])')
out=$(env -u LD_LIBRARY_PATH "$bin" --version 2>&1) || { echo "installed sockstack failed: $out"; exit 1; }
case $out in
"sockstack $version"*) ;;
*) echo "unexpected --version output: $out"; exit 1 ;;
esac
# The library it runs with is the installed one, not the build tree's.
lib=$(env -u LD_LIBRARY_PATH ldd "$bin" | awk '/libsockstack/ {print $3}')
case $lib in
"$dest$prefix"/*) ;;
*) echo "sockstack resolves libsockstack to '$lib', not under $dest$prefix"; exit 1 ;;
esac
[ -f "$dest$prefix/share/man/man1/sockstack.1" ] || { echo "man page not installed"; exit 1; }
# The man page's HTTP example renders with its backslashes.
if command -v man >/dev/null; then
    man -l "$dest$prefix/share/man/man1/sockstack.1" 2>/dev/null |
        grep -qF "printf 'HEAD / HTTP/1.0\r\n\r\n' | sockstack connect --info example.org 80" ||
        { echo "man page: the HTTP example does not render as written"; exit 1; }
fi
echo "ok: $bin --version: $out; libsockstack: $lib"
