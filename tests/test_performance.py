"""The fast paths give the same numbers as the obvious slow ones."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from callscope.capture.datagrams import Datagrams
from callscope.metrics.delay import _theil_sen_slope
from callscope.metrics.smoothing import exponential_average, linear_recurrence

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
FIXTURE = FIXTURES / "rtpproxy__lost.a.pcap"


def _loop(u: np.ndarray, a: float, y0: float) -> np.ndarray:
    out, y = [], y0
    for v in u:
        y = a * y + v
        out.append(y)
    return np.array(out)


@pytest.mark.parametrize("a", [0.0, 0.5, 15 / 16, 0.998002])
@pytest.mark.parametrize("n", [1, 3, 1000, 30_000])
def test_recurrence_matches_a_loop_over_every_sample(a, n):
    u = np.random.default_rng(n).normal(0, 50, n)
    got = linear_recurrence(u, a, initial=7.0)
    assert np.max(np.abs(got - _loop(u, a, 7.0))) < 1e-9 * np.abs(u).max()


def test_recurrence_carries_the_initial_state_across_short_blocks(monkeypatch):
    from callscope.metrics import smoothing

    # blocks of 21 samples (0.9^-21 < 10): the carried state matters at every block
    monkeypatch.setattr(smoothing, "_MAX_GROWTH", 10.0)
    smoothing._powers.cache_clear()
    try:
        u = np.random.default_rng(0).normal(size=1000)
        got = smoothing.linear_recurrence(u, 0.9, initial=5.0)
    finally:
        smoothing._powers.cache_clear()
    assert np.max(np.abs(got - _loop(u, 0.9, 5.0))) < 1e-12


def test_recurrence_crosses_block_boundaries_exactly():
    # a = 15/16 gives blocks of a few thousand samples: 20 000 spans several
    u = np.zeros(20_000)
    u[0] = 16.0
    y = linear_recurrence(u, 15 / 16)
    assert y[0] == 16.0
    assert y[10_000] == pytest.approx(16.0 * (15 / 16) ** 10_000, rel=1e-9, abs=1e-300)
    assert y[5000] == pytest.approx(16.0 * (15 / 16) ** 5000, rel=1e-9)


def test_jitter_recurrence_is_rfc3550_running_estimate():
    d = np.array([0.0, 16.0, 16.0, 0.0, 32.0])
    j, expect = 0.0, []
    for x in d:  # RFC 3550 §6.4.1: J(i) = J(i-1) + (|D(i-1,i)| - J(i-1)) / 16
        j += (abs(x) - j) / 16
        expect.append(j)
    assert exponential_average(d, 1 / 16).tolist() == pytest.approx(expect, rel=1e-15)


def test_theil_sen_is_the_median_pairwise_slope():
    x = np.array([0.0, 1.0, 2.0, 3.0, 4.0])
    y = np.array([0.0, 1.0, 2.0, 3.0, 100.0])  # one outlier does not tilt it
    assert _theil_sen_slope(x, y) == pytest.approx(1.0)
    assert _theil_sen_slope(np.array([1.0, 1.0]), np.array([0.0, 5.0])) is None


def _datagrams(data: np.ndarray, start: np.ndarray, caplen: np.ndarray) -> Datagrams:
    n = start.size
    z = np.zeros(n, np.int64)
    return Datagrams(
        frame=z, time_ns=z, ip_version=np.full(n, 4, np.uint8), src=np.zeros((n, 16), np.uint8),
        dst=np.zeros((n, 16), np.uint8), sport=np.zeros(n, np.uint16), dport=np.zeros(n, np.uint16),
        udp_payload_len=caplen, payload_caplen=caplen, frame_caplen=caplen, frame_len=caplen,
        payload_start=start, data=data,
    )


def test_payload_prefix_equals_byte_slices_zero_padded():
    rng = np.random.default_rng(3)
    for _ in range(300):
        size = int(rng.integers(1, 120))
        data = rng.integers(0, 256, size, dtype=np.uint8)
        start = rng.integers(0, size, 12).astype(np.int64)
        caplen = np.minimum(rng.integers(0, 40, 12), size - start).astype(np.int32)
        d = _datagrams(data, start, caplen)
        for width in (1, 12, 24, 30):
            got = d.payload_prefix(width)
            for i in range(start.size):
                row = data[start[i] : start[i] + min(int(caplen[i]), width)]
                assert got[i, : row.size].tolist() == row.tolist()
                assert not got[i, row.size :].any()



def test_peaks_and_running_median_agree_with_scipy():
    from scipy.ndimage import median_filter
    from scipy.signal import find_peaks as scipy_find_peaks

    from callscope.diagnose.peaks import find_peaks, running_median

    rng = np.random.default_rng(11)
    for trial in range(300):
        n = int(rng.integers(1, 400))
        x = np.round(np.cumsum(rng.normal(size=n)), 1)  # rounding makes flat tops
        k = 2 * int(rng.integers(0, 6)) + 1
        assert np.array_equal(running_median(x, k), median_filter(x, size=k, mode="nearest"))
        wlen = int(rng.integers(3, 120))
        prominence = float(rng.uniform(0.0, 2.0))
        index, props = scipy_find_peaks(x, prominence=prominence, wlen=wlen)
        got = find_peaks(x, prominence, wlen)
        assert got.index.tolist() == index.tolist(), trial
        assert got.left_base.tolist() == props["left_bases"].tolist(), trial
        assert got.right_base.tolist() == props["right_bases"].tolist(), trial
        assert np.allclose(got.prominence, props["prominences"])


def test_a_flat_topped_peak_is_found_once_at_its_middle():
    from callscope.diagnose.peaks import find_peaks

    x = np.array([0.0, 1.0, 3.0, 3.0, 3.0, 3.0, 1.0, 0.0, 2.0, 0.0])
    got = find_peaks(x, prominence=1.5, wlen=11)
    assert got.index.tolist() == [3, 8]
    assert got.prominence.tolist() == [3.0, 2.0]


def test_gathering_chunks_as_they_come_equals_joining_them():
    from callscope.capture.reader import CaptureReader
    from callscope.media import MediaColumns, extract

    def chunks():
        return (extract(c) for c in CaptureReader(FIXTURE, chunk_bytes=1 << 16))

    gathered, joined = MediaColumns.gather(chunks()), MediaColumns.concat(list(chunks()))
    assert len(gathered) == 244
    for f in dataclasses.fields(MediaColumns):
        a, b = getattr(gathered, f.name), getattr(joined, f.name)
        assert a.dtype == b.dtype and np.array_equal(a, b), f.name


def test_analyzing_a_policed_call_imports_no_scipy():
    # scipy.signal alone takes longer to import than a small capture takes to
    # analyze; only rare paths (a Gilbert-Elliott likelihood fit) may load scipy
    code = (
        "import sys, callscope\n"
        f"assert callscope.analyze({str(FIXTURES / 'twopoint-policed.b.pcap')!r}).verdict == 'policing'\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('scipy', 'matplotlib')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_media_columns_hold_header_fields_not_payload_bytes():
    from callscope.capture.reader import CaptureReader
    from callscope.media import MediaColumns, extract

    cols = MediaColumns.gather(extract(c) for c in CaptureReader(FIXTURE))
    per_row = sum(
        getattr(cols, f.name).nbytes for f in dataclasses.fields(MediaColumns)
        if getattr(cols, f.name).shape[:1] == (len(cols),)
    ) / len(cols)
    assert cols.msg_data.size == 0  # RTP only: no payload byte is kept
    assert per_row <= 56  # about 54 bytes a datagram, whatever its size


def test_key_table_is_exact_even_when_every_hash_collides(monkeypatch):
    from callscope.capture import flows

    keys = np.array([[1, 2, 3], [4, 5, 6], [1, 2, 3], [7, 8, 9], [4, 5, 6]], np.uint8)
    expect_keys, expect_index = [[1, 2, 3], [4, 5, 6], [7, 8, 9]], [0, 1, 0, 2, 1]
    table, index = flows.group_rows(keys)
    assert table.tolist() == expect_keys and index.tolist() == expect_index
    monkeypatch.setattr(flows, "_hash_keys", lambda k: np.zeros(k.shape[0], np.uint64))
    table, index = flows.group_rows(keys)
    assert table.tolist() == expect_keys and index.tolist() == expect_index


def test_json_arrays_keep_values_and_turn_non_finite_into_null():
    from callscope.report.jsonout import jsonable

    a = np.array([[0.5, np.nan], [np.inf, -2.0]])
    assert jsonable(a) == [[0.5, None], [None, -2.0]]
    assert jsonable(np.array([3, 4], dtype=np.uint16)) == [3, 4]
    assert jsonable(np.array([True, False])) == [True, False]
    assert all(type(v) is float for v in jsonable(np.array([1.0, 2.0], dtype=np.float32)))


def test_cli_json_is_the_standard_librarys_document(tmp_path):
    import json

    import click
    from click.testing import CliRunner

    from callscope.cli import cli
    from callscope.cli.common import echo_json

    doc = {"a": [1, 2.5, None], 7: "seven", "nested": {"x": "é"}}
    runner = CliRunner()

    @click.command()
    def show():
        echo_json(doc)

    out = runner.invoke(show).output
    assert json.loads(out) == json.loads(json.dumps(doc))
    assert out.endswith("}\n") and out.startswith("{\n  ")
    result = runner.invoke(cli, ["analyze", "--format", "json", str(FIXTURE)])
    assert json.loads(result.output)["streams"][0]["packets"] > 0


@pytest.mark.parametrize(("preset", "expected"), [(None, "0"), ("1", "1")])
def test_cli_turns_off_numpys_huge_page_advice_unless_the_user_set_it(preset, expected):
    env = {k: v for k, v in __import__("os").environ.items() if k != "NUMPY_MADVISE_HUGEPAGE"}
    if preset is not None:
        env["NUMPY_MADVISE_HUGEPAGE"] = preset
    script = (
        "import sys\n"
        "from callscope.cli import main\n"
        f"sys.argv = ['callscope', 'info', {str(FIXTURE)!r}]\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "import os, numpy\n"
        "print(os.environ['NUMPY_MADVISE_HUGEPAGE'], numpy._core.multiarray._get_madvise_hugepage())\n"
    )
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)
    flag, advised = out.stdout.split()[-2:]
    assert flag == expected
    assert advised == ("True" if expected == "1" else "False")


def test_field_gather_equals_byte_slices_zero_beyond_what_is_available():
    from callscope.media import demux

    rng = np.random.default_rng(7)
    data = rng.integers(0, 256, 101).astype(np.uint8)
    start = np.concatenate([rng.integers(0, 101, 300), [0, 96, 97, 100, 98]])
    avail = np.concatenate([rng.integers(-3, 30, 300), [24, 5, 4, 1, 24]])
    for width in (1, 4, 24):
        got = demux.gather(data, start, avail, width)
        for row, (s, a) in enumerate(zip(start, avail, strict=True)):
            want = [int(data[min(s + k, data.size - 1)]) if k < a else 0 for k in range(width)]
            assert got[row].tolist() == want, (width, s, a)


def test_cli_json_goes_to_a_text_only_stdout():
    import contextlib
    import io
    import json

    from callscope.cli.common import echo_json

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        echo_json({"verdict": "clean", "mos": 4.4})
    assert json.loads(buf.getvalue()) == {"verdict": "clean", "mos": 4.4}
