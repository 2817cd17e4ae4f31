"""The JSON documents callscope writes hold to their shipped JSON Schemas.

Every ``callscope/1`` document of the corpus (bundled fixtures, the shared
real captures, the kernel-impaired lab captures, a small simulated corpus)
validates against ``callscope-1.schema.json``; one whole document is kept
as a snapshot; the schema rejects a key it does not list and a missing
required key; ``batch --jsonl`` records validate against
``batch-record-1.schema.json``.
"""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path

import jsonschema
import pytest

from callscope import __version__
from callscope.analysis import analyze
from callscope.diagnose.findings import PATTERNS
from callscope.gates import CaptureScore
from callscope.media.columns import TRANSPORT_NAMES
from callscope.report.jsonout import load_schema, report_dict
from conftest import FIXTURES, ROOT, SHARED_CAPTURES, run_cli, shared_capture_files

LAB_V1 = SHARED_CAPTURES.parent / "lab-v1"
SNAPSHOT = Path(__file__).parent / "snapshots" / "twopoint-policed.b.json"
#: the fixture whose whole document is the snapshot (SIP, RTCP, two streams, two findings)
SNAPSHOT_CAPTURE = "fixtures/twopoint-policed.b.pcap"
VERSION_PLACEHOLDER = "<callscope version>"


@pytest.fixture(scope="module")
def validator():
    schema = load_schema("callscope-1")
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def _errors(validator, doc) -> list[str]:
    return [f"{e.json_path}: {e.message[:200]}" for e in validator.iter_errors(doc)]


def _check(validator, path: Path) -> dict:
    """Analyze ``path``: its document validates and the gates read the same scores from either form."""
    report = analyze(path)
    doc = json.loads(json.dumps(report_dict(report)))  # what a consumer reads back
    assert _errors(validator, doc) == [], path
    assert CaptureScore.from_report(report) == CaptureScore.from_document(doc), path
    return doc


@pytest.mark.parametrize("path", sorted(FIXTURES.glob("*.pcap")), ids=lambda p: p.name)
def test_fixture_documents_hold_to_the_schema(validator, path):
    _check(validator, path)


@pytest.mark.parametrize("path", shared_capture_files(), ids=lambda p: p.name)
def test_real_capture_documents_hold_to_the_schema(validator, path):
    doc = _check(validator, path)
    assert doc["streams"] or doc["verdict"]["pattern"] == "setup-blocked" or doc["stun"]["exchanges"]


@pytest.mark.parametrize("path", sorted(LAB_V1.glob("*.pcap")) if LAB_V1.is_dir() else [],
                         ids=lambda p: p.name)
def test_lab_capture_documents_hold_to_the_schema(validator, path):
    _check(validator, path)


@pytest.mark.parametrize("opaque", [False, True], ids=["rtp", "opaque"])
def test_simulated_documents_hold_to_the_schema(validator, tmp_path, opaque):
    from callscope.synth.corpus import generate_corpus

    paths = generate_corpus(tmp_path, 1, seed=15, duration=12.0, opaque=opaque)
    kinds = set()
    for path in paths:
        doc = _check(validator, path)
        kinds.update(s["kind"] for s in doc["streams"])
    assert len(paths) == len(PATTERNS) and kinds == ({"opaque"} if opaque else {"rtp"})


def test_a_whole_document_matches_its_snapshot(capsys, monkeypatch):
    """Byte for byte, version aside: a change here is a change of the contract, made on purpose
    (regenerate with CALLSCOPE_UPDATE_SNAPSHOT=1 and say why in the commit)."""
    monkeypatch.chdir(ROOT)
    code, out, err = run_cli(capsys, "analyze", "--format", "json", SNAPSHOT_CAPTURE)
    assert code == 0 and err == ""
    version = f'"callscope_version": "{__version__}"'
    assert out.count(version) == 1
    out = out.replace(version, f'"callscope_version": "{VERSION_PLACEHOLDER}"')
    if os.environ.get("CALLSCOPE_UPDATE_SNAPSHOT"):
        SNAPSHOT.parent.mkdir(exist_ok=True)
        SNAPSHOT.write_text(out, encoding="utf-8")
    assert out == SNAPSHOT.read_text(encoding="utf-8")


def _snapshot() -> dict:
    return json.loads(SNAPSHOT.read_text(encoding="utf-8"))


def test_the_snapshot_holds_to_the_schema_and_covers_every_section(validator):
    doc = _snapshot()
    assert _errors(validator, doc) == []
    assert doc["verdict"]["pattern"] == "policing" and len(doc["streams"]) == 2
    assert doc["findings"][0]["evidence"] and doc["findings"][0]["params"] and doc["findings"][0]["spans"]
    assert doc["sip"]["calls"][0]["media"] and doc["rtcp"]["report_blocks"] and doc["calls"]


@pytest.mark.parametrize("where", [
    lambda d: d,
    lambda d: d["capture"],
    lambda d: d["verdict"],
    lambda d: d["streams"][0],
    lambda d: d["streams"][0]["emodel"],
    lambda d: d["streams"][0]["series"],
    lambda d: d["calls"][0],
    lambda d: d["findings"][0],
    lambda d: d["findings"][0]["evidence"][0],
    lambda d: d["rtcp"],
    lambda d: d["rtcp"]["report_blocks"][0],
    lambda d: d["sip"]["calls"][0],
    lambda d: d["sip"]["calls"][0]["media"][0],
], ids=["top", "capture", "verdict", "stream", "emodel", "series", "call", "finding", "evidence",
        "rtcp", "report_block", "sip_call", "sdp_media"])
def test_an_unknown_key_or_a_missing_required_key_is_not_callscope_1(validator, where):
    extra = _snapshot()
    where(extra)["surprise"] = 1
    assert any("surprise" in e for e in _errors(validator, extra))
    missing = _snapshot()
    key = next(iter(where(missing)))
    del where(missing)[key]
    assert any(f"'{key}' is a required property" in e for e in _errors(validator, missing))


def test_opaque_streams_have_no_rtp_keys_and_rtp_streams_have_all_of_them(validator):
    doc = _snapshot()
    opaque = copy.deepcopy(doc)
    opaque["streams"][0]["kind"] = "opaque"
    assert _errors(validator, opaque)  # still carries ssrc, payload_type, ...
    for k in ("ssrc", "ssrc_hex", "payload_type", "clock_rate", "clock_source"):
        del opaque["streams"][0][k]
    assert _errors(validator, opaque) == []
    rtp = copy.deepcopy(doc)
    del rtp["streams"][0]["ssrc_hex"]
    assert any("'ssrc_hex' is a required property" in e for e in _errors(validator, rtp))


def test_wrong_types_and_values_are_rejected(validator):
    for change in (
        lambda d: d["streams"][0].__setitem__("packets", "12"),
        lambda d: d["streams"][0].__setitem__("src_port", 70000),
        lambda d: d["verdict"].__setitem__("pattern", "gremlins"),
        lambda d: d.__setitem__("schema", "callscope/2"),
        lambda d: d["streams"][0]["series"].__setitem__("window_s", 0),
    ):
        doc = _snapshot()
        change(doc)
        assert _errors(validator, doc), change


def _resolve(schema: dict, node: dict) -> dict:
    while "$ref" in node:
        node = schema["$defs"][node["$ref"].rsplit("/", 1)[1]]
    return node


def _walk_key_order(schema: dict, node: dict, value: object, path: str) -> None:
    """Every object's keys come in the order its schema lists them."""
    node = _resolve(schema, node)
    if isinstance(value, dict) and "properties" in node:
        listed = list(node["properties"])
        assert list(value) == [k for k in listed if k in value], path
        for k, v in value.items():
            _walk_key_order(schema, node["properties"][k], v, f"{path}/{k}")
    elif isinstance(value, list) and isinstance(node.get("items"), dict):
        for i, v in enumerate(value):
            _walk_key_order(schema, node["items"], v, f"{path}[{i}]")


def test_documents_list_their_keys_in_the_schema_order():
    schema = load_schema("callscope-1")
    _walk_key_order(schema, schema, _snapshot(), "")


def test_the_schema_enumerations_are_the_code_names():
    schema = load_schema("callscope-1")
    assert schema["$defs"]["pattern"]["enum"] == list(PATTERNS)
    transport = schema["$defs"]["stream"]["properties"]["transport"]["enum"]
    assert transport == list(TRANSPORT_NAMES)
    record = load_schema("batch-record-1")
    assert record["properties"]["verdict"]["enum"] == [*PATTERNS, None]


def test_batch_jsonl_records_hold_to_their_schema(capsys, tmp_path):
    schema = load_schema("batch-record-1")
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    (tmp_path / "broken.pcap").write_bytes(b"\xd4\xc3\xb2\xa1 not a capture")
    jsonl = tmp_path / "out.jsonl"
    code, _, _ = run_cli(capsys, "batch", "-q", "--jobs", "1", "--jsonl", jsonl, "--max-loss", "0.01",
                         "--fail-on", "policing", FIXTURES / "twopoint-policed.b.pcap",
                         FIXTURES / "rtpproxy__dups.a.pcap", tmp_path / "broken.pcap")
    records = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert code == 1 and sorted(r["status"] for r in records) == ["error", "fail", "pass"]
    for r in records:
        assert [f"{e.json_path}: {e.message}" for e in validator.iter_errors(r)] == [], r["path"]
    failed = next(r for r in records if r["status"] == "fail")
    assert failed["findings"] and failed["gates"] and failed["findings"][0]["evidence"]
    extra = dict(failed, surprise=1)
    assert any("surprise" in e.message for e in validator.iter_errors(extra))


def test_sections_no_corpus_capture_fills_are_written_as_before_and_hold_to_the_schema():
    """RTCP XR VoIP metrics and BYEs, TURN channel bindings, SDES crypto and NaN: the explicit
    writer gives what walking the dataclasses gave, and the schema takes it."""
    import math

    from callscope.media.rtcp import Bye, ReportBlock, RtcpSummary, VoipMetrics
    from callscope.media.sip import CryptoAttribute, SdpMedia, SipCall, SipSummary
    from callscope.media.stun import ChannelBinding, StunExchange, StunSummary
    from callscope.report.jsonout import jsonable, rtcp_dict, sip_dict, stun_dict

    rtcp = RtcpSummary(
        packets=3, encrypted=0, malformed=1,
        report_blocks=(ReportBlock(4, 1.5, "10.0.0.1", 5001, "10.0.0.2", 5003, "RR", 7, 8, 0.25, 12,
                                   65600, 40, 0, 0, math.nan),),
        voip_metrics=(VoipMetrics(5, 2.0, 7, 8, 0.02, 0.01, 0.1, 0.005, 120, 3000, 80, 40, -20, None,
                                  None, 16, 88, None, 4.1, None, 0, 60, 120, 200),),
        cnames=((7, "alice@host"),),
        byes=(Bye(9, 30.0, (7, 8), "hang-up"), Bye(10, 30.1, (9,), None)),
        encrypted_ssrcs=(11,),
    )
    stun = StunSummary((StunExchange(
        "10.0.0.1", 50000, "198.51.100.7", 3478, 0.1, 9.9, 2, 1, 0, 3, 1, 1, 4, 4, 0, 9, 6, 2, 0, 5, 400,
        channel_bindings=(ChannelBinding(0x4000, "203.0.113.9", 40000, 17),), error_codes=(401, 438),
        retried_after_answer=1),))
    media = SdpMedia("audio", "10.0.0.1", 5004, "RTP/SAVP", (0, 101), ((0, "PCMU", 8000), (101, "telephone-event", 8000)),
                     crypto=(CryptoAttribute("1 AES_CM_128_HMAC_SHA1_80 inline:c2VjcmV0a2V5"),))
    sip = SipSummary(4, (SipCall("abc@host", "sip:a@h", None, None, 1, ("INVITE", "BYE"), 200, (media,),
                                 0.0, 31.0, 30.5),))

    schema = load_schema("callscope-1")
    for written, before, section in ((rtcp_dict(rtcp), rtcp, "rtcp"), (stun_dict(stun), stun, "stun"),
                                     (sip_dict(sip), sip, "sip")):
        assert written == jsonable(before) and list(written) == list(jsonable(before))
        doc = json.loads(json.dumps(written))
        section_schema = {**schema["$defs"][section], "$defs": schema["$defs"]}
        errors = list(jsonschema.Draft202012Validator(section_schema).iter_errors(doc))
        assert errors == [], section
        _walk_key_order(schema, schema["$defs"][section], doc, section)
    assert rtcp_dict(rtcp)["report_blocks"][0]["rtt_s"] is None
    assert sip_dict(sip)["calls"][0]["media"][0]["crypto"] == ["1 AES_CM_128_HMAC_SHA1_80 inline:(key withheld)"]
