"""Names and paths every part of the lab agrees on, and the one error a user is shown."""

from __future__ import annotations

import os
import re
import sys

# ANYCHAIN_LAB_STATE_ROOT moves the state dirs (tests); namespaces stay global, hence prefixes.
STATE_ROOT = os.environ.get("ANYCHAIN_LAB_STATE_ROOT", "/run/anychain-lab")
NS_PREFIX = "acl"
FRR_DIR = "/usr/lib/frr"
FRR_RUN = "/var/run/frr"  # FRR creates FRR_RUN/<pathspace>/ for -N <pathspace>
VTYSH = "/usr/bin/vtysh"
# No '-': acl-<prefix>- can then only match this lab's namespaces.
PREFIX_RE = re.compile(r"^[a-z0-9]{1,12}$")


class LabError(Exception):
    """An error the user can fix: printed without a traceback."""


def log(msg: str) -> None:
    print(f"lab: {msg}", file=sys.stderr, flush=True)


def check_prefix(prefix: str) -> str:
    if not PREFIX_RE.match(prefix):
        raise LabError(f"--prefix {prefix!r} must be 1-12 characters of [a-z0-9] "
                       "(no '-', so that namespaces of different labs cannot be confused)")
    return prefix


def lab_dir(prefix: str) -> str:
    return os.path.join(STATE_ROOT, prefix)


def lab_json_path(prefix: str) -> str:
    return os.path.join(lab_dir(prefix), "lab.json")


def ns_name(prefix: str, *parts: str) -> str:
    return "-".join((NS_PREFIX, prefix) + parts)


def router_dir(prefix: str, router: str) -> str:
    return os.path.join(lab_dir(prefix), router)
