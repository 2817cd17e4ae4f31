"""On every real capture in ../shared/captures the reader finds exactly the UDP
datagrams Wireshark finds: same frame numbers, times, addresses, ports, lengths."""

from __future__ import annotations

import subprocess
import warnings

import numpy as np
import pytest

from callscope.capture import address_to_str, read_capture
from conftest import shared_capture_files

FIELDS = ("frame.number", "udp.srcport", "udp.dstport", "udp.length", "frame.time_epoch",
          "ip.src", "ipv6.src", "ip.dst", "ipv6.dst")


@pytest.mark.slow
@pytest.mark.parametrize("path", shared_capture_files(), ids=lambda p: p.name)
def test_udp_datagrams_are_the_frames_tshark_calls_udp(shared_captures, tshark, path):
    run = subprocess.run(
        [tshark, "-r", str(path), "-Y", "udp && !icmp && !icmpv6", "-T", "fields",
         *(a for f in FIELDS for a in ("-e", f)), "-E", "occurrence=f"],
        capture_output=True, text=True, timeout=120, check=True,
    )
    ref = np.array([line.split("\t") for line in run.stdout.splitlines()], dtype=object).reshape(-1, len(FIELDS))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # none of these captures is damaged
        cap = read_capture(path)
    d = cap.datagrams
    assert d.frame.tolist() == ref[:, 0].astype(np.int64).tolist()
    assert d.sport.tolist() == ref[:, 1].astype(np.int64).tolist()
    assert d.dport.tolist() == ref[:, 2].astype(np.int64).tolist()
    assert (d.udp_payload_len + 8).tolist() == ref[:, 3].astype(np.int64).tolist()
    # frame.time_epoch has ns digits: equal to the µs/ns the file holds
    assert d.time_ns.tolist() == [int(t.replace(".", "").ljust(19, "0")) for t in ref[:, 4]]
    assert cap.info.udp_datagrams == len(d)
    assert [address_to_str(a) for a in d.src] == [v4 or v6 for v4, v6 in ref[:, 5:7]]
    assert [address_to_str(a) for a in d.dst] == [v4 or v6 for v4, v6 in ref[:, 7:9]]
