#!/usr/bin/env bash
# Two-router FRR lab for the OSPF API client integration test.
#
#   frr_lab.sh up DIR PREFIX      create netns PREFIX-r1/PREFIX-r2 joined by a veth, start
#                                 zebra + ospfd -a in each, wait for a Full adjacency
#   frr_lab.sh restart-ospfd DIR PREFIX N   kill ospfd of router N and start it again
#   frr_lab.sh vtysh DIR PREFIX N CMD...     run a vtysh command against router N
#   frr_lab.sh down DIR PREFIX    stop the daemons, delete the namespaces and DIR
#
# Router N has router-id N.N.N.N (loopback /32), veth address 10.77.0.N/30, OSPF area 0,
# interface cost 25 on both ends, point-to-point network type, or broadcast (a transit network
# with a DR and a network-LSA) when LAB_NET=broadcast. Needs root and Debian's FRR 8.4.
set -euo pipefail

cmd=${1:?command}
DIR=${2:?state dir}
PREFIX=${3:?name prefix}
FRR=/usr/lib/frr

ns() { echo "${PREFIX}-r$1"; }
rdir() { echo "$DIR/r$1"; }

write_conf() {
  local n=$1 d
  d=$(rdir "$n")
  mkdir -p "$d"
  cat >"$d/zebra.conf" <<CONF
hostname ${PREFIX}-r$n
interface lo
 ip address $n.$n.$n.$n/32
CONF
  local nettype="ip ospf network point-to-point"
  [[ ${LAB_NET:-p2p} == broadcast ]] && nettype="ip ospf network broadcast"
  cat >"$d/ospfd.conf" <<CONF
hostname ${PREFIX}-r$n
interface ${PREFIX}v$n
 $nettype
 ip ospf hello-interval 1
 ip ospf dead-interval 4
 ip ospf cost 25
 ip ospf area 0.0.0.0
interface lo
 ip ospf area 0.0.0.0
router ospf
 ospf router-id $n.$n.$n.$n
 capability opaque
 timers throttle lsa all 0
 timers lsa min-arrival 0
 timers throttle spf 0 50 200
CONF
  : >"$d/vtysh.conf"
  chown -R frr:frr "$d"
}

start_zebra() {
  local n=$1 d
  d=$(rdir "$n")
  ip netns exec "$(ns "$n")" "$FRR/zebra" -N "${PREFIX}r$n" -f "$d/zebra.conf" -i "$d/zebra.pid" \
    -z "$d/zserv.api" --vty_socket "$d" -P 0 -d --log "file:$d/zebra.log"
}

start_ospfd() {
  local n=$1 d
  d=$(rdir "$n")
  ip netns exec "$(ns "$n")" "$FRR/ospfd" -N "${PREFIX}r$n" -a -f "$d/ospfd.conf" -i "$d/ospfd.pid" \
    -z "$d/zserv.api" --vty_socket "$d" -P 0 -d --log "file:$d/ospfd.log"
}

kill_pidfile() {
  local f=$1 pid
  [[ -f $f ]] || return 0
  pid=$(cat "$f" 2>/dev/null || true)
  if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; then
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$f"
}

vty() {
  local n=$1
  shift
  vtysh --vty_socket "$(rdir "$n")" --config_dir "$(rdir "$n")" -c "$*"
}

case $cmd in
up)
  mkdir -p "$DIR"
  mkdir -p "/var/run/frr/${PREFIX}r1" "/var/run/frr/${PREFIX}r2"
  chown frr:frr "/var/run/frr/${PREFIX}r1" "/var/run/frr/${PREFIX}r2"
  for n in 1 2; do
    ip netns add "$(ns "$n")"
    ip -n "$(ns "$n")" link set lo up
  done
  ip link add "${PREFIX}v1" netns "$(ns 1)" type veth peer name "${PREFIX}v2" netns "$(ns 2)"
  for n in 1 2; do
    ip -n "$(ns "$n")" addr add "10.77.0.$n/30" dev "${PREFIX}v$n"
    ip -n "$(ns "$n")" link set "${PREFIX}v$n" up
    write_conf "$n"
    start_zebra "$n"
  done
  sleep 0.5
  for n in 1 2; do start_ospfd "$n"; done
  for _ in $(seq 200); do
    if vty 1 "show ip ospf neighbor" 2>/dev/null | grep -q Full; then exit 0; fi
    sleep 0.1
  done
  echo "frr_lab: no Full adjacency" >&2
  exit 1
  ;;
restart-ospfd)
  n=${4:?router}
  kill_pidfile "$(rdir "$n")/ospfd.pid"
  start_ospfd "$n"
  ;;
vtysh)
  n=${4:?router}
  shift 4
  vty "$n" "$@"
  ;;
down)
  for n in 1 2; do
    kill_pidfile "$(rdir "$n")/ospfd.pid"
    kill_pidfile "$(rdir "$n")/zebra.pid"
    ip netns del "$(ns "$n")" 2>/dev/null || true
    rm -rf "/var/run/frr/${PREFIX}r$n"
  done
  rm -rf "$DIR"
  ;;
*)
  echo "usage: $0 up|down|restart-ospfd|vtysh DIR PREFIX [N] [CMD]" >&2
  exit 2
  ;;
esac
