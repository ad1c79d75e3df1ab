#!/bin/sh
# NAT topology for the point-to-point chat tests (issue 11).
#
#   nat_topo.sh up PREFIX MODE    build it;  nat_topo.sh down PREFIX    remove it
#
#            PREFIX-pub (server 203.0.113.1, bridge)
#              |                        |
#   203.0.113.11 PREFIX-nat1   203.0.113.12 PREFIX-nat2     nftables masquerade
#   10.0.1.1     (LAN bridge)  10.0.2.1                     + drop unsolicited
#     |              |            |
#   PREFIX-h1     PREFIX-h1b    PREFIX-h2
#   10.0.1.2      10.0.1.3      10.0.2.2
#
# MODE "cone": both NATs keep one mapping per local port (Linux masquerade
# keeps the source port), so TCP hole punching works. MODE "symmetric":
# nat2 picks a random port for every connection and every UDP flow
# (masquerade random), which defeats TCP and UDP punching. MODE "udp": nat2
# randomizes TCP only and keeps the source port of UDP, so TCP punching
# fails and UDP punching works. MODE "udploss": as "udp", and nat2 drops 3%
# of the UDP datagrams it forwards, either way, at random (nftables numgen:
# this kernel has no netem). Only namespaces named PREFIX-* are touched.
set -e
cmd=$1 p=$2 mode=${3:-cone}
ns() { ip netns exec "$p-$1" "$@"; }
if [ "$cmd" = down ]; then
    for n in h1 h1b h2 nat1 nat2 pub; do ip netns del "$p-$n" 2>/dev/null || true; done
    exit 0
fi
for n in pub nat1 nat2 h1 h1b h2; do ip netns add "$p-$n"; done
x() { n=$1; shift; ip netns exec "$p-$n" "$@"; }
x pub ip link add br0 type bridge
x pub ip addr add 203.0.113.1/24 dev br0
x pub ip link set br0 up
x pub ip link set lo up
for i in 1 2; do
    ip link add w$i netns "$p-pub" type veth peer name wan netns "$p-nat$i"
    x pub ip link set w$i master br0 up
    x nat$i ip addr add 203.0.113.1$i/24 dev wan
    x nat$i ip link set wan up
    x nat$i ip link set lo up
    x nat$i ip link add lan type bridge
    x nat$i ip addr add 10.0.$i.1/24 dev lan
    x nat$i ip link set lan up
    x nat$i sysctl -qw net.ipv4.ip_forward=1
done
attach() { # attach HOST NAT ADDR
    ip link add eth0 netns "$p-$1" type veth peer name "to-$1" netns "$p-$2"
    x "$2" ip link set "to-$1" master lan up
    x "$1" ip addr add "$3"/24 dev eth0
    x "$1" ip link set eth0 up
    x "$1" ip link set lo up
    x "$1" ip route add default via "$4"
}
attach h1 nat1 10.0.1.2 10.0.1.1
attach h1b nat1 10.0.1.3 10.0.1.1
attach h2 nat2 10.0.2.2 10.0.2.1
for i in 1 2; do
    tcp=""
    flags=""
    [ "$mode" = symmetric ] && [ $i = 2 ] && flags="random"
    case $mode in udp*) [ $i = 2 ] && tcp='oifname "wan" meta l4proto tcp masquerade random;';;
    esac
    x nat$i nft -f - <<NFT
table ip nat {
    chain post { type nat hook postrouting priority 100; $tcp
        oifname "wan" masquerade $flags; }
}
table ip filter {
    chain input { type filter hook input priority 0; iifname "wan" ct state new drop; }
    chain fromwan { type filter hook forward priority 0;
        iifname "wan" ct state established,related accept; iifname "wan" drop; }
}
NFT
done
if [ "$mode" = udploss ]; then
    x nat2 nft -f - <<NFT
table ip loss {
    chain drops { type filter hook forward priority -10;
        meta l4proto udp numgen random mod 100 < 3 counter drop; }
}
NFT
fi
