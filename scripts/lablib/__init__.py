"""The anychain lab (scripts/lab) as a package, one module per concern.

Dependencies run one way, leaves first:
  names     errors, prefixes, namespace names and state paths
  proc      running commands, pid files, /proc scans, stopping processes
  addresses the lab pool: explicit subnets, automatic /30s, point-to-point endpoints
  topology  the TOML file: keys, names, references, costs -> the resolved topology (pure)
  policy    the WCMP policy's fixed point on a resolved topology (pure; scripts/experiment)
  frr       zebra/ospfd configs and command lines, vtysh queries
  plumbing  the commands that build a router's own side (loopback, sysctls, VNF/host netns)
  netns     the journal (state.json), namespaces, veths, sysctls, teardown
  programs  what the lab runs besides FRR: the agent hook
  backend   Lab: how a node is reached (exec, spawn, vtysh, programs, kill-node); the netns one
  status    health, OSPF convergence, `status`
  vm        the VM backend (`up --vm`): taps, bridges, nodes booted through vm-tests/run, SSH
  up        building a lab from a resolved topology
  cli       the command line of scripts/lab
The unit tests (tests/lab) import topology, addresses, policy, plumbing and vm's pure parts:
they need neither root nor FRR.
"""
