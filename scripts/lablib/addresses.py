"""Address allocation of a lab: one pool, explicit subnets, automatic /30s.

Every subnet a topology names is claimed while the file is read; automatic subnets are handed
out afterwards, in file order, as the pool's /30s that neither overlap a claimed subnet nor
contain a claimed address (loopbacks, anycasts). Adding an explicit subnet therefore never
moves another item's explicit subnet, and an automatic one never collides with it.
"""

from __future__ import annotations

import ipaddress
from typing import Iterator

from .names import LabError

IPv4Address = ipaddress.IPv4Address
IPv4Network = ipaddress.IPv4Network


def endpoints(net: IPv4Network) -> tuple[str, str]:
    """The two ends of a point-to-point subnet: a /31's two addresses (RFC 3021), otherwise
    the first two host addresses."""
    if net.prefixlen == 31:
        return str(net.network_address), str(net.network_address + 1)
    hosts = net.hosts()
    return str(next(hosts)), str(next(hosts))


class AddressPlan:
    def __init__(self, pool: IPv4Network):
        self.pool = pool
        self.subnets: list[tuple[IPv4Network, str]] = []  # claimed, with their owner
        self.addrs: dict[IPv4Address, str] = {}
        self._auto: Iterator[IPv4Network] = (pool.subnets(new_prefix=30) if pool.prefixlen <= 30
                                             else iter(()))

    def claim_addr(self, addr: IPv4Address, what: str) -> None:
        if addr in self.addrs:
            raise LabError(f"{what}: address {addr} already used by {self.addrs[addr]}")
        self.addrs[addr] = what

    def subnet_containing(self, addr: IPv4Address) -> tuple[IPv4Network, str] | None:
        return next(((n, o) for n, o in self.subnets if addr in n), None)

    def claim_subnet(self, net: IPv4Network, what: str) -> None:
        if net.prefixlen > 31:
            raise LabError(f"{what}: subnet {net} is too small (need /31 or larger)")
        for other, owner in self.subnets:
            if net.overlaps(other):
                raise LabError(f"{what}: subnet {net} overlaps {other} of {owner}")
        for addr, owner in self.addrs.items():
            if addr in net:
                raise LabError(f"{what}: subnet {net} contains {addr} ({owner})")
        self.subnets.append((net, what))

    def allocate(self, what: str) -> IPv4Network:
        """The pool's next free /30. The scan only moves forward: an earlier /30 skipped for a
        collision stays skipped."""
        for net in self._auto:
            if any(net.overlaps(o) for o, _ in self.subnets):
                continue
            if any(a in net for a in self.addrs):
                continue
            self.subnets.append((net, what))
            return net
        raise LabError(f"{what}: address pool {self.pool} is exhausted")
