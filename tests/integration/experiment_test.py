#!/usr/bin/python3
"""The paper's experiment, time-compressed (scripts/experiment --quick), as a test.

Brings its own lab up (prefix xq<pid>), runs two compressed runs (pooled: a single 60 s run has
only about two flow lifetimes per steady window), and checks that:
  - the experiment accepts (every steady-state median within 5 points of 50/50 and 40/40/20;
    its exit status says so, and summary.json agrees);
  - shares.csv has per-second rows for both phases with shares of vnfB, vnfC and vnfD;
  - shares.png is a PNG image.
Usage: experiment_test.py SRC_DIR BUILD_DIR   (root; exits 77 when not root)
"""
import csv
import json
import os
import subprocess
import sys


def main():
    if os.geteuid() != 0:
        print("experiment_test: needs root (network namespaces, XDP)")
        return 77
    src, build = sys.argv[1], sys.argv[2]
    out = os.path.join(build, "experiment-quick")
    prefix = f"xq{os.getpid() % 100000}"
    r = subprocess.run(["/usr/bin/python3", os.path.join(src, "scripts", "experiment"), "--compress", "3", "--runs", "2",
                        "--prefix", prefix, "--build", build, "--out", out], timeout=900)
    failures = []

    def check(cond, what):
        print(("ok   " if cond else "FAIL ") + what, flush=True)
        if not cond:
            failures.append(what)

    check(r.returncode == 0, f"experiment accepted (exit status {r.returncode})")
    summary_path = os.path.join(out, "summary.json")
    if os.path.exists(summary_path):
        with open(summary_path) as f:
            summary = json.load(f)
        check(summary["accepted"] and not summary["misses"], f"summary.json: accepted, misses {summary['misses']}")
        for ph, names in (("1", ["vnfB", "vnfC"]), ("2", ["vnfB", "vnfC", "vnfD"])):
            for n in names:
                s = summary["table"][ph][n]
                check(s is not None and s["samples"] >= 20, f"phase {ph} {n}: {s and s['samples']} steady samples")
    else:
        check(False, "summary.json written")
    csv_path = os.path.join(out, "shares.csv")
    rows = list(csv.DictReader(open(csv_path))) if os.path.exists(csv_path) else []
    check(len(rows) >= 100, f"shares.csv has {len(rows)} per-second rows")
    check({r["phase"] for r in rows} == {"1", "2"}, "shares.csv covers both phases")
    check(all(r["share_vnfD"] in ("", "0.00") for r in rows if r["phase"] == "1" and r["steady"]),
          "no traffic on vnfD before it starts")
    check(any(float(r["share_vnfD"] or 0) > 0 for r in rows if r["phase"] == "2"), "vnfD serves in phase 2")
    png = os.path.join(out, "shares.png")
    with open(png, "rb") if os.path.exists(png) else open(os.devnull, "rb") as f:
        head = f.read(8)
    check(head == b"\x89PNG\r\n\x1a\n" and os.path.getsize(png) > 1000, f"{png} is a PNG")
    if failures:
        print(f"{len(failures)} check(s) failed: " + "; ".join(failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
