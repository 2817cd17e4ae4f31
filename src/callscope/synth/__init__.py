"""Labelled simulated captures: a voice call through a modelled impairment.

>>> from callscope.synth import simulate, write_capture
>>> call = simulate("policing", seed=3, duration=20)
>>> write_capture(call, "out/policed.pcap")  # also writes out/policed.truth.json
PosixPath('out/policed.truth.json')

``simulate_many_streams`` makes big captures (benchmarks), ``generate_corpus``
a labelled corpus for ``callscope evaluate``, and ``write_two_point`` both
ends' captures of one call for ``callscope compare``.
"""

from callscope.capture.files import truth_path
from callscope.synth.both_ends import write_two_point
from callscope.synth.call import SimulatedCall, simulate, simulate_many_streams
from callscope.synth.corpus import generate_corpus
from callscope.synth.output import truth_document, write_capture
from callscope.synth.packets import Kind, StreamInfo
from callscope.synth.scenarios import SCENARIOS, DropReason

__all__ = [
    "SCENARIOS",
    "DropReason",
    "Kind",
    "SimulatedCall",
    "StreamInfo",
    "generate_corpus",
    "simulate",
    "simulate_many_streams",
    "truth_document",
    "truth_path",
    "write_capture",
    "write_two_point",
]
