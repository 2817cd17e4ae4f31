"""The self-contained HTML report: escaping of capture content, no external fetch, renders in Chromium."""

from __future__ import annotations

import json
import re
import shutil
import struct
import subprocess
from html.parser import HTMLParser

import pytest
from click.testing import CliRunner

from callscope.analysis import analyze
from callscope.cli import cli
from callscope.report.html import render_html
from callscope.synth import simulate, write_capture

scapy_all = pytest.importorskip("scapy.all")
from scapy.all import IP, UDP, Ether, Raw, wrpcap  # noqa: E402

XSS = "<script>alert(1)</script>"
#: A codec name from SDP cannot contain "/" or spaces (RFC 4566 a=rtpmap), so this is its markup.
XSS_CODEC = "<script>alert(3)<script>"
#: Everything the report is allowed to contain.
ALLOWED_TAGS = {
    "html", "head", "meta", "title", "style", "body", "h1", "h2", "h3", "p", "div", "span", "table",
    "thead", "tbody", "tr", "th", "td", "img", "figure", "figcaption", "ul", "li", "br", "footer", "audio", "code",
}
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run")
CHECK_SCRIPT = """<script>
window.addEventListener("load", () => {
  const out = document.createElement("pre");
  out.id = "callscope-check";
  const audio = Array.from(document.querySelectorAll("audio"));
  Promise.all(audio.map(a => new Promise(ok => {
    if (a.readyState >= 1) { ok(); } else { a.onloadedmetadata = ok; a.onerror = ok; a.load(); }
  }))).then(() => {
    out.textContent = JSON.stringify({
      images: Array.from(document.images).map(i => [i.complete, i.naturalWidth, i.naturalHeight]),
      audio: audio.map(a => [a.error ? a.error.code : 0, a.duration]),
    });
    document.body.appendChild(out);
  });
});
</script>"""


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.attrs: list[tuple[str, str | None]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attrs.extend(attrs)


def _craft(path) -> None:
    """SIP INVITE whose From, Call-ID, SDP s= and rtpmap carry markup; then RTP to the SDP port."""
    sdp = ("v=0\r\no=- 1 1 IN IP4 10.0.0.2\r\n"
           f"s={XSS}\r\nc=IN IP4 10.0.0.2\r\nt=0 0\r\n"
           f"m=audio 40000 RTP/AVP 96\r\na=rtpmap:96 {XSS_CODEC}/8000\r\n")
    sip = ("INVITE sip:bob@example.com SIP/2.0\r\n"
           "Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK1\r\n"
           f"From: \"{XSS}\" <sip:mallory@example.com>;tag=1\r\n"
           "To: <sip:bob@example.com>\r\n"
           f"Call-ID: {XSS}@x\r\nCSeq: 1 INVITE\r\nContent-Type: application/sdp\r\n"
           f"Content-Length: {len(sdp)}\r\n\r\n{sdp}")
    t0 = 1_700_000_000.0
    first = Ether() / IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=5060, dport=5060) / Raw(sip.encode())
    first.time = t0
    pkts = [first]
    for i in range(150):
        if i % 10 == 7:
            continue
        rtp = struct.pack("!BBHII", 0x80, 96, 1000 + i, 8000 + 160 * i, 0x11223344) + bytes(160)
        q = Ether() / IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=30000, dport=40000) / Raw(rtp)
        q.time = t0 + 0.1 + 0.02 * i
        pkts.append(q)
    wrpcap(str(path), pkts)


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    path = tmp_path_factory.mktemp("html") / "<script>alert(2)<script>.pcap"
    _craft(path)
    return analyze(path)


def test_capture_content_cannot_inject_markup(hostile):
    stream = hostile.inventory.streams[0]
    assert stream.codec == XSS_CODEC  # the hostile strings did reach the analysis
    assert any(c.session_name == XSS for c in hostile.inventory.calls)
    doc = render_html(hostile)
    parser = _Tags()
    parser.feed(doc)
    assert set(parser.tags) <= ALLOWED_TAGS
    assert "script" not in parser.tags
    assert not any(name.startswith("on") for name, _ in parser.attrs)
    assert "<script" not in doc.lower()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in doc  # SDP s=, From, Call-ID
    assert "&lt;script&gt;alert(2)&lt;script&gt;.pcap" in doc  # the file name
    assert "&lt;script&gt;alert(3)&lt;script&gt;" in doc  # the codec name


def test_report_is_self_contained(hostile):
    doc = render_html(hostile)
    parser = _Tags()
    parser.feed(doc)
    srcs = [v for k, v in parser.attrs if k in ("src", "href")]
    assert len(srcs) == 3  # timeline, loss structure, distributions
    assert all(v.startswith("data:image/png;base64,") for v in srcs)
    assert any(k == "content" and v.startswith("default-src 'none'") for k, v in parser.attrs)
    assert not re.search(r"(src|href)\s*=\s*[\"']?(https?:|//)", doc)


def test_report_lists_verdict_findings_and_tables(hostile):
    doc = render_html(hostile, plots=False)
    assert "Verdict: policing" in doc
    assert doc.count('class="finding"') == len(hostile.diagnosis.findings)
    assert "0x11223344" in doc
    assert "10.0.0.1:30000" in doc and "10.0.0.2:40000" in doc
    assert "<img" not in doc


@pytest.fixture(scope="module")
def policed_report(tmp_path_factory):
    d = tmp_path_factory.mktemp("chromium")
    capture = d / "policed.pcap"
    write_capture(simulate("policing", seed=3, duration=10, codec="pcmu"), capture)
    out = d / "report.html"
    res = CliRunner().invoke(cli, ["report", str(capture), "-o", str(out)])
    assert res.exit_code == 0, res.output
    assert "verdict" in res.output
    return out


def _chromium(tmp_path, *args: str) -> subprocess.CompletedProcess:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        pytest.skip("chromium is not installed (.ci/run installs it)")
    cmd = [exe, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)


def test_report_renders_in_headless_chromium(policed_report, tmp_path):
    shot = tmp_path / "shot.png"
    _chromium(tmp_path, f"--screenshot={shot}", "--window-size=1280,4000", policed_report.as_uri())
    assert shot.exists() and shot.stat().st_size > 50_000
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_report_images_decode_and_console_is_clean(policed_report, tmp_path):
    # The report as written: Chromium logs any console message (CSP violation,
    # failed load, script error) as a CONSOLE line.
    res = _chromium(tmp_path, "--enable-logging=stderr", "--v=0", "--dump-dom", policed_report.as_uri())
    assert "Verdict: policing" in res.stdout
    assert [line for line in res.stderr.splitlines() if ":CONSOLE" in line] == []

    # A copy with a probe script (the report's own CSP forbids scripts) reports
    # every image's decoded size into the DOM.
    doc = policed_report.read_text(encoding="utf-8")
    doc = re.sub(r'<meta http-equiv="Content-Security-Policy"[^>]*>', "", doc)
    probe = tmp_path / "probe.html"
    probe.write_text(doc.replace("</body>", CHECK_SCRIPT + "</body>"), encoding="utf-8")
    res = _chromium(tmp_path, "--virtual-time-budget=10000", "--dump-dom", probe.as_uri())
    found = re.search(r'<pre id="callscope-check">(.*?)</pre>', res.stdout)
    assert found, res.stderr[-2000:]
    result = json.loads(found.group(1))
    images = result["images"]
    # two timelines, one loss structure, the worst direction's spectrogram, one distributions figure
    assert len(images) >= 5
    assert all(complete and width > 300 and height > 200 for complete, width, height in images)
    # the worst direction's audio (one per call) decodes to about the 10 s of media
    assert len(result["audio"]) == 1
    assert all(error == 0 and 8.0 < duration < 10.5 for error, duration in result["audio"])


def test_long_streams_get_the_audio_command_instead_of_an_embedded_player(tmp_path, monkeypatch):
    from callscope.capture.reader import read_capture
    from callscope.report import html as html_report

    capture = tmp_path / "short.pcap"
    write_capture(simulate("clean", seed=1, duration=4, codec="pcma"), capture)
    report = analyze(capture)
    cap = read_capture(capture)
    embedded, heard = html_report._audio_html(report, cap, "s1", ())
    assert embedded.count("<audio controls") == 1
    assert re.search(r'src="data:audio/(ogg|wav);base64,', embedded)
    assert heard.rendering is not None and heard.rendering.codec == "PCMA"
    monkeypatch.setattr(html_report, "MAX_EMBEDDED_AUDIO_S", 1.0)
    listed, heard = html_report._audio_html(report, cap, "s1", ())
    assert "<audio" not in listed and heard is None
    assert "callscope audio short.pcap --stream s1 -o s1.wav" in listed
