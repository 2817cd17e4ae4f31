"""The fast paths give the same numbers as the obvious slow ones."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from callscope.capture.datagrams import Datagrams

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
FIXTURE = FIXTURES / "rtpproxy__lost.a.pcap"


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
