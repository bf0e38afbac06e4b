#!/usr/bin/env python3
"""Send the same UDP flows from two CPUs at once (tests/integration, issue 13): two processes,
pinned to CPU 0 and CPU 1, each with its own socket per flow bound to the same source port
(SO_REUSEPORT), so each flow's packets leave from both CPUs, interleaved: the process on CPU c
sends the flow's packets c, c + 2, c + 4, ... with the anychain lab payload
(include/anychain/lab_payload.h) that anychain-sink counts. Prints one JSON line:
{"packets_sent": N, "per_cpu": [n0, n1], "flows": F, "send_errors": E}.

    two_cpu_sender.py --dst ADDR --dport 9000 --flows 8 --packets 200 --rate 1000 --flow-id-base 1 --sport-base 30000

The source ports must lie outside the namespace's ephemeral range (ip_local_port_range), which
anychain-trafgen's flows draw from: a lab's NFs key their per-flow state by the 5-tuple, so a
later (or earlier) trafgen flow on one of these ports would add its packets to these flows'
counts. The sender refuses ports inside it.
"""
import argparse
import json
import os
import socket
import struct
import time

MAGIC = 0x41434C42  # AC_LAB_MAGIC


def child(cpu, a, w):
    os.sched_setaffinity(0, {cpu})
    socks = []
    for i in range(a.flows):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        s.bind(("0.0.0.0", a.sport_base + i))
        s.connect((a.dst, a.dport))
        socks.append(s)
    sent = errors = 0
    gap = 2.0 / a.rate  # each process sends every other packet of every flow
    t = time.monotonic()
    for seq in range(cpu, a.packets, 2):
        for i, s in enumerate(socks):
            payload = struct.pack(">IIIQ4I", MAGIC, a.flow_id_base + i, seq, time.time_ns(), 0, 0, 0, 0)
            try:
                s.send(payload.ljust(a.size, b"\0"))
                sent += 1
            except OSError:
                errors += 1
        t += gap
        time.sleep(max(0.0, t - time.monotonic()))
    os.write(w, json.dumps([sent, errors]).encode())
    os._exit(0)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dst", required=True)
    p.add_argument("--dport", type=int, default=9000)
    p.add_argument("--flows", type=int, default=8)
    p.add_argument("--packets", type=int, default=200, help="packets per flow, over both CPUs")
    p.add_argument("--rate", type=float, default=1000, help="packets per second per flow")
    p.add_argument("--flow-id-base", type=int, default=1)
    p.add_argument("--sport-base", type=int, default=30000, help="first source port (outside ip_local_port_range)")
    p.add_argument("--size", type=int, default=64, help="UDP payload bytes (>= 36)")
    a = p.parse_args()
    if len(os.sched_getaffinity(0) & {0, 1}) < 2:
        raise SystemExit("needs CPUs 0 and 1")
    with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
        lo, hi = (int(x) for x in f.read().split())
    if a.sport_base <= hi and a.sport_base + a.flows - 1 >= lo:
        raise SystemExit(f"--sport-base {a.sport_base}: ports {a.sport_base}..{a.sport_base + a.flows - 1} overlap "
                         f"the ephemeral range {lo}..{hi} other flows of the namespace draw from")
    pipes, pids = [], []
    for cpu in (0, 1):
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(r)
            child(cpu, a, w)
        os.close(w)
        pipes.append(r)
        pids.append(pid)
    res = []
    for r, pid in zip(pipes, pids):
        res.append(json.loads(os.read(r, 4096) or b"[0, 0]"))
        os.waitpid(pid, 0)
    print(json.dumps({"packets_sent": sum(x[0] for x in res), "per_cpu": [x[0] for x in res], "flows": a.flows,
                      "send_errors": sum(x[1] for x in res)}))


if __name__ == "__main__":
    main()
