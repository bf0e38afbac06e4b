#!/usr/bin/python3
"""FTC recovery time by phase (issue 13, docs/ftc.md 7.6-7.7, docs/performance.md "FTC").

Brings up the keyed FTC lab of the integration tests (tests/integration/ftclab.py: four nodes
with real FRR and anychaind, src -- A -- B -- C -- D -- dst, the chain fw1 (B) -> mon1 (C) ->
nat1 (D) with f = 1 and the FTC channel keyed on every agent), and for each record count:
sends flows until the victim holds that many of its own records (head records, e.g. one NAT
mapping per flow), waits for the egress buffer to settle, then SIGKILLs the victim's process
--kills times. Each time its node's anychaind restarts it, recovers its records from the
holders over the channel and makes it live; the bench reads the phase times anychaind reports
(`anychain status` -> ftc_recovery.last: detection, transfer, rerouting) and the records
installed, and prints min / median / max per phase. Between two kills it waits --pause seconds
so that the supervisor's restart back-off is back at its minimum (a process that ran 30 s).
The lab is taken down at the end (also on error or Ctrl-C) and what it left is checked; when a
recovery failed (no record, lost records, errors, a conflict), the lab's logs and files (agents,
ospfd, the NFs' published state) are copied to --failed-logs first.

    sudo bench/ftc_recovery_bench.py --build-dir build --flows 10,1000,10000 --kills 5

Root only (exit 77 otherwise: ctest's "skipped"). Prints a table and, with --json FILE, every
run. Exits non-zero when a kill is not recovered, a recovery reports lost records, errors or a
conflict, or the lab leaves something behind (bench_ftc_recovery_smoke runs it short).
"""
import argparse
import json
import os
import shutil
import signal
import statistics
import sys
import time
from types import SimpleNamespace

sys.dont_write_bytecode = True  # nothing written into the source tree

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests", "integration"))
import ftclab  # noqa: E402
import labkit  # noqa: E402
from conftest import Procs  # noqa: E402

LAB_KIND = "b"  # lab prefix actb<pid>
# the chain of ftc_lab_test.py, with a NAT block large enough for the largest record count
CHAIN = ftclab.Chain({
    "fw1": ("B", 31, "fw", "firewall", ftclab.FW_RULE),
    "mon1": ("C", 32, "mon", "monitor", {}),
    "nat1": ("D", 33, "nat", "nat", ftclab.nat_section("20000-59999")),
})


class TimedChain(ftclab.Chain):
    """The chain with the agents' plane timers set (`timers: spf_delay_ms, spf_hold_ms`,
    docs/config.md): the rerouting phase waits for the plane's throttled recomputation."""

    def __init__(self, nfs, timers):
        super().__init__(nfs)
        self.timers = timers

    def router_config(self, router, key_file=None):
        c = super().router_config(router, key_file)
        if self.timers:
            c["timers"] = self.timers
        return c


PHASES = ("detection_ms", "transfer_ms", "rerouting_ms")


def own_records(cli, victim):
    """The victim's head records as `anychain state` shows them (NAT mappings, monitor flows)."""
    st = cli.state(victim)
    return len(st["nat"]["mappings"]) if "nat" in st else len(st["monitor"]["flows"])


def fill(lab, build, procs, cli, victim, target):
    """New flows until the victim holds `target` records of its own: 2 packets each, at most 500
    new flows a second; then the egress buffer settles."""
    need = target - own_records(cli, victim)
    if need <= 0:
        return
    fps = min(need, 500)
    dur = need / fps
    labkit.send_streams(lab, build, procs, ftclab.SRC, ftclab.SINK, [(9000, fps, 0.2, 10, dur)], sink_s=dur + 4)
    labkit.wait_until(lambda: cli.buffer("D")["ports"]["nf-nat1"]["held"] == 0, ftclab.HOLD_TIMEOUT_MS / 1000 + 5)


def bad_run(r):
    """A recovery that lost records, failed, lost a conflict or recovered no record at all."""
    return r["lost"] or r["errors"] or r["conflict"] or not r["heads"]


def kill_once(cli, victim, timeout=30):
    """SIGKILL the victim; wait until its node's anychaind reports the recovery of its new
    incarnation with its rerouting time. Returns that report (the entry of ftc_recovery.last)."""
    router, iid = CHAIN.nfs[victim][0], str(CHAIN.nfs[victim][1])
    last = cli.json(router, "status")["ftc_recovery"].get("last", {}).get(iid)
    inc = last["incarnation"] if last else None
    os.kill(cli.nf_status(victim)["pid"], signal.SIGKILL)
    out = {}

    def done():
        cur = cli.json(router, "status")["ftc_recovery"].get("last", {}).get(iid)
        if cur and cur["incarnation"] != inc and cur["rerouting_ms"] > 0 and cli.nf_status(victim)["alive"]:
            out.update(cur)
            return True
        return False
    if not labkit.wait_until(done, timeout, interval=0.1):
        raise RuntimeError(f"{victim}: no recovery reported within {timeout} s: "
                           f"{cli.json(router, 'status')['ftc_recovery']}")
    return out


def summary(runs):
    s = {}
    for p in PHASES + ("heads", "replicas"):
        v = [r[p] for r in runs]
        s[p] = {"min": min(v), "median": statistics.median(v), "max": max(v)}
    s["lost"] = sum(r["lost"] for r in runs)
    s["errors"] = sum(len(r["errors"]) for r in runs)
    return s


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build-dir", default=os.path.join(labkit.SRC, "build"), help="the build directory")
    ap.add_argument("--flows", default="10,1000,10000",
                    help="record counts, comma separated, increasing (flows whose records the victim holds)")
    ap.add_argument("--kills", type=int, default=5, help="kills per record count")
    ap.add_argument("--victim", default="nat1", choices=sorted(CHAIN.nfs), help="the instance killed")
    ap.add_argument("--pause", type=float, default=31,
                    help="seconds between a recovery and the next kill (the supervisor's back-off resets after 30 s)")
    ap.add_argument("--spf-delay-ms", type=int, help="the agents' timers.spf_delay_ms (default: the daemon's, 50)")
    ap.add_argument("--spf-hold-ms", type=int, help="the agents' timers.spf_hold_ms (default: the daemon's)")
    ap.add_argument("--json", help="write every run here")
    ap.add_argument("--failed-logs", default="/var/tmp/ftc-recovery-bench",
                    help="where the lab's logs go when a recovery failed (a directory per lab; empty: not kept)")
    a = ap.parse_args()
    if os.geteuid() != 0:
        print("ftc_recovery_bench: needs root (network namespaces, FRR, XDP)", file=sys.stderr)
        sys.exit(77)
    d = os.path.abspath(a.build_dir)
    build = SimpleNamespace(dir=d, anychaind=os.path.join(d, "agent", "daemon", "anychaind"),
                            cli=os.path.join(d, "agent", "cli", "anychain"), tools=os.path.join(d, "agent", "tools"))
    for exe in (build.anychaind, build.cli, os.path.join(d, "agent", "nf", "anychain-nf")):
        if not os.access(exe, os.X_OK):
            sys.exit(f"ftc_recovery_bench: {exe} not built")
    sizes = [int(x) for x in a.flows.split(",")]
    if sizes != sorted(sizes) or sizes[0] < 1:
        sys.exit("ftc_recovery_bench: --flows must be positive and increasing")
    timers = {k: v for k, v in (("spf_delay_ms", a.spf_delay_ms), ("spf_hold_ms", a.spf_hold_ms)) if v is not None}
    chain = TimedChain(CHAIN.nfs, timers)
    labkit.reap_stale_labs()
    procs = Procs()
    lab, why = ftclab.lab_up(chain, LAB_KIND, build, keyed=True)
    if lab is None:
        sys.exit(f"ftc_recovery_bench: {why}")
    results = {"victim": a.victim, "kills": a.kills, "pause_s": a.pause, "timers": timers, "sizes": {}}
    try:
        cli = ftclab.Cli(lab, build, CHAIN)
        c = ftclab.configure(cli, lab, CHAIN)
        if not (c.running and c.learnt and c.control):
            raise RuntimeError(f"lab not ready: running {c.running}, learnt {c.learnt}, control {c.wrong}")
        for n in sizes:
            fill(lab, build, procs, cli, a.victim, n)
            held = own_records(cli, a.victim)
            runs = []
            for i in range(a.kills):
                r = kill_once(cli, a.victim)
                runs.append(r)
                print(f"{n} flows, kill {i + 1}: detection {r['detection_ms']:.1f} ms, transfer "
                      f"{r['transfer_ms']:.1f} ms, rerouting {r['rerouting_ms']:.1f} ms (the plane's recomputation "
                      f"{r.get('rerouting_plane_ms', 0):.1f} ms), {r['heads']} heads, "
                      f"{r['replicas']} replicas, lost {r['lost']}", flush=True)
                if i + 1 < a.kills or n != sizes[-1]:
                    time.sleep(a.pause)
            results["sizes"][n] = {"records_at_start": held, "runs": runs, "summary": summary(runs)}
    finally:
        procs.stop()
        if any(bad_run(r) for v in results["sizes"].values() for r in v["runs"]) and a.failed_logs:
            dest = os.path.join(a.failed_logs, lab.prefix)
            shutil.copytree(lab.state, dest, symlinks=True, dirs_exist_ok=True,
                            ignore=shutil.ignore_patterns("bpffs", "*.sock", "*.api", "*.vty"))
            print(f"ftc_recovery_bench: a recovery failed; the lab's logs are in {dest}", flush=True)
        ftclab.lab_down(lab)
        left = {k: v for k, v in labkit.leftovers(lab.prefix).items() if v}
        if os.path.exists(lab.frag):
            left["files"] = [lab.frag]
        results["left_behind"] = left
    print(f"\nvictim {a.victim}, {a.kills} kills per size (min / median / max, ms)")
    print("| flows | records (heads + replicas, median) | detection | transfer | rerouting | lost |")
    print("| --- | --- | --- | --- | --- | --- |")
    for n, r in results["sizes"].items():
        s = r["summary"]
        f = lambda p: "{:.1f} / {:.1f} / {:.1f}".format(s[p]["min"], s[p]["median"], s[p]["max"])  # noqa: E731
        print(f"| {n} | {s['heads']['median']:.0f} + {s['replicas']['median']:.0f} | {f('detection_ms')} | "
              f"{f('transfer_ms')} | {f('rerouting_ms')} | {s['lost']} |")
    if a.json:
        with open(a.json, "w") as out:
            json.dump(results, out, indent=1)
    bad = [(n, r) for n, v in results["sizes"].items() for r in v["runs"] if bad_run(r)]
    if bad:
        sys.exit(f"ftc_recovery_bench: recoveries with lost records, errors, a conflict or no record: {bad}")
    if left:
        sys.exit(f"ftc_recovery_bench: the lab left {left}")


if __name__ == "__main__":
    main()
