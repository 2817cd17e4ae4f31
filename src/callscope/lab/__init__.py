"""A real impairment lab: labelled calls degraded by a real Linux network stack.

Three network namespaces (caller, router, callee) joined by veths; the
router impairs with nftables and tc and carries cross traffic; both ends
capture with tcpdump; the ground truth comes from the two captures and is
checked against the kernel's own counters. See :mod:`callscope.lab.topology`
for the network, :mod:`callscope.lab.scenario` for what a scenario is,
:mod:`callscope.lab.catalogue` for the corpus and :mod:`callscope.lab.run`
for a run.
"""
