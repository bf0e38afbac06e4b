"""lablib.addresses: endpoints of point-to-point subnets and the pool allocator. Expected
subnets are written out by hand from the pool's /30 grid, not taken from the code."""
import ipaddress

import pytest

from lablib.addresses import AddressPlan, endpoints
from lablib.names import LabError

N = ipaddress.IPv4Network
A = ipaddress.IPv4Address


@pytest.mark.parametrize("net,want", [
    ("10.0.0.0/31", ("10.0.0.0", "10.0.0.1")),      # RFC 3021: both addresses are hosts
    ("10.0.0.4/30", ("10.0.0.5", "10.0.0.6")),      # network .4 and broadcast .7 excluded
    ("10.0.0.8/29", ("10.0.0.9", "10.0.0.10")),
    ("192.168.7.0/24", ("192.168.7.1", "192.168.7.2")),
])
def test_endpoints(net, want):
    assert endpoints(N(net)) == want


def test_pool_hands_out_its_30s_in_order_then_is_exhausted():
    plan = AddressPlan(N("10.0.0.0/28"))
    got = [str(plan.allocate(f"item {i}")) for i in range(4)]
    assert got == ["10.0.0.0/30", "10.0.0.4/30", "10.0.0.8/30", "10.0.0.12/30"]
    with pytest.raises(LabError, match=r"item 4: address pool 10.0.0.0/28 is exhausted"):
        plan.allocate("item 4")


def test_allocation_skips_claimed_subnets_and_addresses():
    plan = AddressPlan(N("10.0.0.0/27"))
    plan.claim_subnet(N("10.0.0.4/31"), "link X")    # blocks the /30 at .4
    plan.claim_addr(A("10.0.0.9"), "a loopback")     # blocks the /30 at .8
    plan.claim_subnet(N("10.0.0.16/29"), "vnf Y")    # blocks .16 and .20
    got = [str(plan.allocate(str(i))) for i in range(3)]
    assert got == ["10.0.0.0/30", "10.0.0.12/30", "10.0.0.24/30"]


def test_an_explicit_subnet_outside_the_pool_does_not_disturb_it():
    plan = AddressPlan(N("10.0.0.0/24"))
    plan.claim_subnet(N("172.16.0.0/31"), "link X")
    assert str(plan.allocate("a")) == "10.0.0.0/30"


@pytest.mark.parametrize("first,second", [
    ("10.1.0.0/24", "10.1.0.128/25"),   # second inside first
    ("10.1.0.128/25", "10.1.0.0/24"),   # first inside second
    ("10.1.0.0/30", "10.1.0.0/31"),
    ("10.1.0.0/30", "10.1.0.0/30"),     # the same subnet twice
])
def test_overlapping_subnets_are_refused(first, second):
    plan = AddressPlan(N("10.0.0.0/16"))
    plan.claim_subnet(N(first), "link A-B")
    with pytest.raises(LabError, match=rf"link A-C: subnet {second} overlaps {first} of link A-B"):
        plan.claim_subnet(N(second), "link A-C")


def test_adjacent_subnets_are_fine():
    plan = AddressPlan(N("10.0.0.0/16"))
    plan.claim_subnet(N("10.1.0.0/31"), "x")
    plan.claim_subnet(N("10.1.0.2/31"), "y")
    plan.claim_subnet(N("10.1.0.4/30"), "z")
    assert len(plan.subnets) == 3


def test_a_subnet_may_not_contain_a_claimed_address():
    plan = AddressPlan(N("10.0.0.0/16"))
    plan.claim_addr(A("10.1.0.2"), "router 'A' loopback")
    with pytest.raises(LabError, match=r"subnet 10.1.0.0/30 contains 10.1.0.2 \(router 'A' loopback\)"):
        plan.claim_subnet(N("10.1.0.0/30"), "link A-B")


def test_a_32_is_too_small():
    with pytest.raises(LabError, match=r"subnet 10.1.0.1/32 is too small"):
        AddressPlan(N("10.0.0.0/16")).claim_subnet(N("10.1.0.1/32"), "link A-B")


def test_duplicate_address():
    plan = AddressPlan(N("10.0.0.0/16"))
    plan.claim_addr(A("10.255.0.1"), "router 'A' loopback")
    with pytest.raises(LabError, match=r"address 10.255.0.1 already used by router 'A' loopback"):
        plan.claim_addr(A("10.255.0.1"), "service 'fw' anycast")


@pytest.mark.parametrize("pool", ["10.0.0.0/31", "10.0.0.0/32"])
def test_a_pool_smaller_than_a_30_has_nothing_to_give(pool):
    with pytest.raises(LabError, match="exhausted"):
        AddressPlan(N(pool)).allocate("link A-B")


def test_subnet_containing():
    plan = AddressPlan(N("10.0.0.0/16"))
    plan.claim_subnet(N("10.1.0.0/30"), "link A-B")
    assert plan.subnet_containing(A("10.1.0.3")) == (N("10.1.0.0/30"), "link A-B")
    assert plan.subnet_containing(A("10.1.0.4")) is None
