"""Write a simulated call as a capture plus its ground-truth sidecar.

For ``x/call.pcap`` the sidecar is ``x/call.truth.json``::

    {"label": "policing", "scenario": "policing", "seed": 3,
     "params": {"rate_Bps": 4810.2, "burst_bytes": 688, "start_s": 2.1, "direction": "b->a",
                "rate_fraction": 0.55},
     "streams": [{"index": 1, "kind": "rtp", "direction": "b->a", "impaired": true, ...}],
     "windows": [[2.31, 30.0]], ...}

``params`` holds the scenario's true parameters and the numbers measured while
simulating (an actual cut-off time, the expected loss); ``windows`` the spans
(seconds since the capture start) during which the impairment acted.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from pathlib import Path

import numpy as np

from callscope.capture.files import truth_path
from callscope.capture.writer import TOS_EF, write_pcap
from callscope.synth.call import SimulatedCall
from callscope.synth.packets import Kind

TRUTH_SCHEMA = 1

#: What the parameters count, for whoever compares estimates with them.
UNITS = {
    "rate_Bps": "UDP payload bytes per second",
    "rate_Bps_before": "UDP payload bytes per second sent before the codec change",
    "rate_Bps_after": "UDP payload bytes per second sent after the codec change",
    "burst_bytes": "UDP payload bytes",
    "buffer_bytes": "UDP payload bytes",
    "capacity_Bps": "UDP payload bytes per second",
    "after_bytes": "UDP payload bytes, both directions",
    "bytes": "UDP payload bytes delivered before the cut, impaired directions together",
    "time_s": "seconds since media start",
    "start_s": "seconds since media start",
    "first_s": "seconds since media start",
    "after_s": "seconds since media start",
    "p": "good->bad transition probability per packet",
    "r": "bad->good transition probability per packet",
}


def _number(x: float) -> float | int | None:
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return round(x, 6) if isinstance(x, float) else x


def truth_document(call: SimulatedCall, captured: np.ndarray | None = None) -> dict[str, object]:
    """The content of the ground-truth sidecar (JSON-ready).

    ``captured`` marks the packets in the capture described (default: the
    call's own vantage).
    """
    params: dict[str, object] = {k: _number(v) for k, v in dataclasses.asdict(call.scenario).items()}
    params.update({k: _number(float(v)) for k, v in call.facts.items()})
    lost = call.lost
    if captured is None:
        captured = ~np.isnan(call.capture_time)
    return {
        "schema": TRUTH_SCHEMA,
        "label": call.label,
        "accept": list(call.scenario.accepts()),
        "scenario": call.label,
        "seed": call.seed,
        "params": params,
        "units": {k: v for k, v in UNITS.items() if k in params},
        "streams": [
            {**dataclasses.asdict(s), "captured": int(np.count_nonzero(captured & (call.stream == s.index)))}
            for s in call.streams
        ],
        "impaired_directions": sorted(
            {s.direction for s in call.streams if s.impaired}
        ),
        "windows": [[round(a, 6), round(b, 6)] for a, b in call.windows],
        "network": dataclasses.asdict(call.network),
        "duration_s": call.duration,
        "media_start_s": _number(call.media_start),
        "codec": call.codec.name,
        "payload_type": None if call.opaque else call.codec.payload_type,
        "clock_rate": None if call.opaque else call.codec.clock_rate,
        "opaque": call.opaque,
        "vantage": call.vantage,
        "epoch_ns": call.epoch_ns,
        "packets": {
            "sent": len(call),
            "lost": int(np.count_nonzero(lost)),
            "captured": int(np.count_nonzero(captured)),
        },
    }


def write_capture(
    call: SimulatedCall, path: str | os.PathLike[str], *, nanosecond: bool = False
) -> Path:
    """Write ``call`` as a classic pcap at ``path`` and its truth sidecar beside it.

    Parameters
    ----------
    call : SimulatedCall
    path : path-like
        The capture file (``.pcap``).
    nanosecond : bool
        Nanosecond timestamps instead of microseconds.

    Returns
    -------
    Path
        The sidecar written (see :func:`truth_path`).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = call.captured()
    time_ns = call.epoch_ns + np.rint(call.capture_time[rows] * 1e9).astype(np.int64)
    media = np.isin(call.kind[rows], (Kind.RTP, Kind.RTCP, Kind.OPAQUE))
    write_pcap(
        path, time_ns, call.src[rows], call.dst[rows], call.sport[rows], call.dport[rows],
        call.data, call.payload_start[rows], call.size[rows], nanosecond=nanosecond,
        ip_id=call.ip_id[rows], tos=np.where(media, TOS_EF, 0).astype(np.uint8),
    )
    sidecar = truth_path(path)
    sidecar.write_text(json.dumps(truth_document(call), indent=1) + "\n")
    return sidecar
