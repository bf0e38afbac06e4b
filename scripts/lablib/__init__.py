"""The anychain lab (scripts/lab) as a package, one module per concern.

Dependencies run one way, leaves first:
  names     errors, prefixes, namespace names and state paths
  proc      running commands, pid files, /proc scans, stopping processes
  addresses the lab pool: explicit subnets, automatic /30s, point-to-point endpoints
  topology  the TOML file: keys, names, references, costs -> the resolved topology (pure)
  frr       zebra/ospfd configs and command lines, vtysh queries
  netns     the journal (state.json), namespaces, veths, sysctls, teardown
  programs  what the lab runs besides FRR: the agent hook
  status    health, OSPF convergence, `status`
  up        building a lab from a resolved topology
  cli       the command line of scripts/lab
Only topology and addresses are imported by the unit tests: they need neither root nor FRR.
"""
