"""One self-contained HTML file: verdict, findings, tables and plots of a Report.

The file needs nothing else: plots are embedded as base64 PNG ``data:`` URIs
and, for the worst stream of each call, the decoded audio (Opus in Ogg, or
WAV) with its spectrogram under the stream's timeline on the same time axis,
the CSS is inline, there is no script and a Content-Security-Policy forbids
scripts and every network fetch, so it opens the same offline, from a mail
attachment or a CI artefact. Everything that comes from the capture (file
name, addresses, SIP URIs and Call-IDs, SDP session names, codec names,
summaries) is written through :func:`html.escape`: a capture is untrusted
input and must not be able to inject markup into the report.

The tables are built from the ``callscope/1`` JSON document
(:func:`callscope.report.jsonout.report_dict`), so they show exactly the
numbers ``callscope analyze --format json`` reports.
"""

from __future__ import annotations

import base64
import html
import io
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from callscope.report.jsonout import report_dict

#: No script, no fetch of anything: only inline styles and data: images.
CSP = ("default-src 'none'; img-src data:; media-src data:; style-src 'unsafe-inline'; "
       "base-uri 'none'; form-action 'none'")
#: Longest stream whose audio is embedded (Opus at 24 kbit/s is 4 kB/s in base64;
#: the 8 kHz WAV fallback 21 kB/s).
MAX_EMBEDDED_AUDIO_S = 300.0
#: Streams plotted (and listened to) by default: the worst ones. A capture with
#: 500 one-packet streams gets a table row for each and figures for these.
DEFAULT_PLOTTED_STREAMS = 8

CSS = """
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1d1d1f;
       margin: 0 auto; max-width: 1240px; padding: 1.2em 1.6em 3em; }
h1 { font-size: 1.55em; margin: 0 0 .2em; } h2 { margin-top: 1.8em; border-bottom: 2px solid #ddd; }
h3 { margin: 1.4em 0 .4em; font-size: 1.08em; }
.meta { color: #555; } .mono, td.mono { font-family: ui-monospace, Menlo, Consolas, monospace; }
.verdict { border-radius: 8px; padding: .8em 1.1em; margin: 1em 0; border-left: 8px solid; }
.verdict .pattern { font-size: 1.35em; font-weight: 700; }
.clean { background: #eef8ee; border-color: #2ca02c; }
.bad { background: #fdeeee; border-color: #d62728; }
.warn { background: #fff6e6; border-color: #ff7f0e; }
table { border-collapse: collapse; margin: .5em 0 1em; font-size: .92em; }
th, td { border: 1px solid #d8d8d8; padding: .28em .55em; text-align: left; vertical-align: top; }
th { background: #f3f3f3; } .nowrap td { white-space: nowrap; } .wrap td { overflow-wrap: anywhere; }
.scroll { overflow-x: auto; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
.finding { border: 1px solid #ddd; border-radius: 8px; padding: .6em 1em; margin: .8em 0; }
.finding .head { font-weight: 600; } .audible { font-style: italic; color: #444; }
.side { display: flex; flex-wrap: wrap; gap: 0 1.5em; align-items: flex-start; }
figure { margin: 1em 0; } audio { width: 100%; max-width: 640px; }
code { font-family: ui-monospace, Menlo, Consolas, monospace; background: #f3f3f3; padding: 0 .25em; } figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { color: #555; font-size: .9em; }
ul.notes { color: #555; }
footer { margin-top: 3em; color: #888; font-size: .85em; }
"""

#: Stream table columns: (heading, key in the JSON stream object, format).
STREAM_COLUMNS = (
    ("id", "id", "{}"),
    ("from", "src_ep", "{}"),
    ("to", "dst_ep", "{}"),
    ("SSRC", "ssrc_hex", "{}"),
    ("codec", "codec", "{}"),
    ("packets", "packets", "{}"),
    ("lost", "missing", "{}"),
    ("loss %", "loss_pct", "{:.2f}"),
    ("late (adaptive)", "jb_late_adaptive", "{}"),
    ("jitter mean ms", "jitter_mean_ms", "{:.2f}"),
    ("jitter max ms", "jitter_max_ms", "{:.2f}"),
    ("Δ max ms", "delta_max_ms", "{:.1f}"),
    ("delay p95 ms", "delay_p95_ms", "{:.1f}"),
    ("MOS", "mos", "{:.2f}"),
    ("verdict", "verdict", "{}"),
)
NUMERIC_KEYS = frozenset({"packets", "missing", "loss_pct", "jb_late_adaptive", "jitter_mean_ms",
                          "jitter_max_ms", "delta_max_ms", "delay_p95_ms", "mos"})
MAX_SPANS_LISTED = 8
PLOT_CAPTIONS = {
    "timeline": "Timeline: per-packet Δ, jitter and delay; per-window loss, bitrate and MOS; findings shaded.",
    "loss": "Loss run lengths with the Gilbert-Elliott fit and independent loss for comparison.",
    "spectrogram": "Decoded audio as the listener heard it; concealed stretches marked on top.",
    "distributions": "CDFs of Δ, jitter and delay, one line per direction.",
}


def e(value: object) -> str:
    """Text from the capture or the analysis, escaped for HTML content and attributes."""
    return html.escape("" if value is None else str(value), quote=True)


def _fmt(value: object, fmt: str) -> str:
    if value is None or value == "":
        return "–"
    try:
        return e(fmt.format(value))
    except (TypeError, ValueError):
        return e(value)


def _number(value: object) -> str:
    """A finding's number as a person reads it: 6625, 10,530, 0.2298, 4.36."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return _fmt(value, "{}")
    if value == int(value) and abs(value) < 1e12:
        return e(f"{int(value):,}")
    if abs(value) >= 1000:
        return e(f"{value:,.0f}")
    return e(f"{value:.4g}")


def _table(headings: Sequence[str], rows: Iterable[Sequence[str]], numeric: Sequence[bool] = (),
           cls: str = "") -> str:
    """An HTML table; cells must already be escaped. ``cls``: "nowrap" or "wrap" for the cells."""
    out = [f'<div class="scroll"><table class="{cls}"><thead><tr>' if cls else '<div class="scroll"><table><thead><tr>', *(f"<th>{e(h)}</th>" for h in headings), "</tr></thead><tbody>"]
    for row in rows:
        out.append("<tr>")
        for i, cell in enumerate(row):
            cls = ' class="num"' if i < len(numeric) and numeric[i] else ""
            out.append(f"<td{cls}>{cell}</td>")
        out.append("</tr>")
    out.append("</tbody></table></div>")
    return "".join(out)


def _plural(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def _verdict_class(pattern: str) -> str:
    from callscope.diagnose.findings import THROTTLING

    if pattern == "clean":
        return "clean"
    return "bad" if pattern in THROTTLING else "warn"


def _png_data_uri(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _stream_rows(doc: dict) -> list[list[str]]:
    rows = []
    for s in doc["streams"]:
        r = dict(s)
        r["src_ep"] = f"{s['src']}:{s['src_port']}"
        r["dst_ep"] = f"{s['dst']}:{s['dst_port']}"
        lf = s.get("loss_fraction")
        r["loss_pct"] = 100 * lf if lf is not None else None
        if s.get("loss_inferred"):
            r["verdict"] = f"{s['verdict']} (loss inferred from cadence)"
        rows.append([_fmt(r.get(key), fmt) for _, key, fmt in STREAM_COLUMNS])
    return rows


def _findings_html(doc: dict) -> str:
    if not doc["findings"]:
        return "<p>No degradation found: every stream is clean.</p>"
    out = []
    for f in sorted(doc["findings"], key=lambda f: -(f["confidence"] or 0)):
        if f.get("stream_id"):
            about = f"stream {f['stream_id']}"
        else:
            about = f"call {f['call_id']}" if f.get("call_id") else "the whole capture"
        out.append(f'<div class="finding"><div class="head">{e(f["pattern"])} '
                   f'<span class="meta">— confidence {_fmt(f["confidence"], "{:.2f}")}, {e(about)}</span></div>')
        out.append(f"<p>{e(f['summary'])}</p>")
        if f.get("audible"):
            out.append(f'<p class="audible">What a listener hears: {e(f["audible"])}</p>')
        out.append('<div class="side">')
        for key, heading in (("evidence", "evidence"), ("params", "estimated parameter")):
            if f.get(key):
                out.append(_table((heading, "value", "unit"),
                                  ([e(v["name"]), _number(v["value"]), e(v["unit"])] for v in f[key]),
                                  (False, True, False)))
        out.append("</div>")
        spans = f.get("spans") or []
        if spans:
            listed = ", ".join(f"{a:.2f}–{b:.2f} s" for a, b in spans[:MAX_SPANS_LISTED])
            more = f" and {len(spans) - MAX_SPANS_LISTED} more" if len(spans) > MAX_SPANS_LISTED else ""
            out.append(f'<p class="meta">Spans: {e(listed)}{e(more)}</p>')
        out.append("</div>")
    return "".join(out)


def _calls_html(doc: dict) -> str:
    calls = doc.get("calls") or []
    if not calls:
        return ""
    rows = [[e(c["id"]), e(", ".join(c["stream_ids"])), f'<span class="mono">{e(c.get("call_id") or "–")}</span>',
             e(c.get("from_uri") or "–"), e(c.get("to_uri") or "–"), e(c.get("session_name") or "–")]
            for c in calls]
    return "<h2>Calls</h2>" + _table(("call", "streams", "SIP Call-ID", "from", "to", "SDP session (s=)"), rows,
                                     cls="wrap")


def _sip_html(doc: dict) -> str:
    sip = doc.get("sip") or {}
    calls = sip.get("calls") or []
    if not calls:
        return ""
    rows = []
    for c in calls:
        media = "<br>".join(
            e(f"{m['media']} {m['address']}:{m['port']} {m['proto']} "
              + " ".join(f"{pt}={name}/{rate}" for pt, name, rate in m.get("rtpmap") or []))
            for m in c.get("media") or []
        )
        rows.append([f'<span class="mono">{e(c["call_id"])}</span>', e(c.get("from_uri") or "–"),
                     e(c.get("to_uri") or "–"), e(" ".join(c.get("methods") or [])),
                     _fmt(c.get("final_status"), "{}"), e(c.get("session_name") or "–"), media or "–"])
    return (f"<h2>SIP signalling</h2><p class=\"meta\">{_fmt(sip.get('messages'), '{}')} SIP messages.</p>"
            + _table(("Call-ID", "from", "to", "requests", "final status", "session (s=)", "SDP media"), rows,
                     cls="wrap"))


def _listen_set(report, plotted: Sequence[str], asked: Sequence[str] | None, keys: Sequence) -> list[str]:
    """The streams whose audio is embedded: any asked for, else the worst decodable stream of each call."""
    from callscope.report.audio import is_decodable, stream_keys, worst_first

    def decodable(sid: str) -> bool:
        s = report.inventory.stream(sid)
        return is_decodable(s, stream_keys(report, s, keys))

    if asked is not None:
        return [sid for sid in asked if decodable(sid)]
    out, seen = [], set()
    for call in report.inventory.calls:
        members = [sid for sid in call.stream_ids if sid in plotted]
        seen.update(members)
        worst = next((sid for sid in worst_first(report, members) if decodable(sid)), None)
        if worst is not None:
            out.append(worst)
    out += [sid for sid in plotted if sid not in seen and decodable(sid)]
    return out


def _audio_html(report, capture, sid: str, keys: Sequence) -> tuple[str, object]:
    """Spectrogram and player of one stream (HTML) and its Heard."""
    from callscope.report.audio import embeddable, hear
    from callscope.report.plots import format_clock, spectrogram_figure, stream_title

    stream = report.inventory.stream(sid)
    m = report.metrics[sid]
    name = Path(report.path).name
    if m.duration_s > MAX_EMBEDDED_AUDIO_S:
        return (f"<p>{e(stream_title(stream))}: {e(format_clock(m.duration_s, m.duration_s))} is too long "
                f"to embed; write it with <code>callscope audio {e(name)} --stream {e(sid)} "
                f"-o {e(sid)}.wav</code>.</p>"), None
    heard = hear(report, capture, stream, conceal="repeat", keys=keys)
    r = heard.rendering
    if r is None:
        return f'<p class="meta">{e(sid)}: no audio — {e(heard.error)}</p>', heard
    fig = spectrogram_figure(r, stream, r.start_s)
    mime, data = embeddable(r)
    uri = f"data:{mime};base64," + base64.b64encode(data).decode("ascii")
    notes = "".join(f"<li>{e(n)}</li>" for n in r.notes)
    return (f"<figure><img src=\"{_png_data_uri(fig)}\" alt=\"{e('Spectrogram — ' + stream_title(stream))}\">"
            f"<figcaption>Spectrogram of {e(sid)} — same time axis as its timeline above. "
            f"{e(PLOT_CAPTIONS['spectrogram'])}</figcaption></figure>"
            f'<figure class="listen"><audio controls preload="metadata" src="{uri}"></audio>'
            f"<figcaption>What the listener of {e(stream_title(stream))} heard: {r.duration_s:.1f} s of "
            f"{e(r.codec)} ({e(r.decoder)} decoder), {r.concealed_s:.2f} s concealed by repeating the last "
            f"frame ({r.packets_late} packets late for the adaptive playout buffer).</figcaption></figure>"
            + (f'<ul class="notes">{notes}</ul>' if notes else "")), heard


def _plots_html(report, plotted: Sequence[str], listen: Sequence[str], keys: Sequence, total: int) -> tuple[str, list]:
    """Per plotted stream its timeline and loss structure, then, for the listened
    streams, spectrogram and audio; per call the distributions. Also returns the Heard results."""
    from callscope.report.plots import (
        distributions_figure,
        loss_structure_figure,
        stream_title,
        timeline_figure,
    )

    out = ["<h2>Plots</h2>"]
    if len(plotted) < total:
        out.append(f'<p class="meta">Figures for the {len(plotted)} worst of {total} streams (lowest MOS first); '
                   "the tables above list every stream. Ask for more with <code>--plot-streams N</code> "
                   "(0 for all) or name them with <code>--stream ID</code>.</p>")
    heard_all, capture = [], None
    for sid in plotted:
        title = stream_title(report.inventory.stream(sid))
        out.append(f"<div class=\"stream\"><h3>{e(sid)} — {e(title)}</h3>")
        for kind, fig in (("timeline", timeline_figure(report, sid)),
                          ("loss", loss_structure_figure(report, sid) if report.metrics[sid].missing > 0 else None)):
            if fig is None:
                continue
            heading = f"{kind.capitalize()} — {title}"
            out.append(f"<figure><img src=\"{_png_data_uri(fig)}\" alt=\"{e(heading)}\">"
                       f"<figcaption>{e(heading)}. {e(PLOT_CAPTIONS[kind])}</figcaption></figure>")
        if sid in listen:
            if capture is None:
                from callscope.capture.reader import read_capture

                capture = read_capture(report.path)
            html_part, heard = _audio_html(report, capture, sid, keys)
            out.append(html_part)
            if heard is not None:
                heard_all.append(heard)
        out.append("</div>")
    groups, seen = [], set()
    for call in report.inventory.calls:
        g = [sid for sid in call.stream_ids if sid in plotted]
        if g:
            groups.append(g)
            seen.update(g)
    groups += [[sid] for sid in plotted if sid not in seen]
    for g in groups:
        heading = "Distributions — " + ", ".join(g)
        out.append(f"<figure><img src=\"{_png_data_uri(distributions_figure(report, g))}\" alt=\"{e(heading)}\">"
                   f"<figcaption>{e(heading)}. {e(PLOT_CAPTIONS['distributions'])}</figcaption></figure>")
    return "".join(out), heard_all


def _decryption_html(report, heard: Sequence, keys: Sequence) -> str:
    """SRTP per stream and SRTCP per sender: suite, key source, packets decrypted and failing authentication."""
    from callscope.report.audio import decryption_check, stream_keys

    done = {h.stream_id: h.decryption for h in heard if h.decryption is not None}
    capture = None
    rows, findings = [], []
    for s in report.inventory.streams:
        if s.kind != "rtp":
            continue
        cand = stream_keys(report, s, keys)
        if not cand and not s.encrypted:
            continue
        d = done.get(s.id)
        if d is None and cand:
            if capture is None:
                from callscope.capture.reader import read_capture

                capture = read_capture(report.path)
            d = decryption_check(capture, s, cand)
        if d is None:
            rows.append([e(s.id), "–", "no key", _fmt(len(s.packets), "{}"), "–", "–", "–"])
            continue
        if isinstance(d, str):
            rows.append([e(s.id), "–", e(d), _fmt(len(s.packets), "{}"), "–", "–", "–"])
            continue
        rows.append([e(s.id), e(d.suite), e(d.key_source), _fmt(d.packets, "{}"), _fmt(d.decrypted, "{}"),
                     _fmt(d.auth_failures, "{}"), _fmt(d.replays, "{}")])
        if d.finding():
            findings.append(f"{s.id}: {d.finding()}")
    for r in report.inventory.rtcp.srtcp:  # SRTCP, decrypted by the analysis (media.srtcp)
        who = f"{', '.join(r.stream_ids) or f'0x{r.ssrc:08x}'} SRTCP"
        rows.append([e(who), e(r.suite), e(r.key_source), _fmt(r.packets, "{}"), _fmt(r.decrypted, "{}"),
                     _fmt(r.auth_failures, "{}"), _fmt(r.replays, "{}")])
        if r.finding:
            findings.append(f"{who}: {r.finding}")
    if not rows:
        return ""
    out = ["<h2>SRTP decryption</h2>",
           _table(("stream", "suite", "key from", "packets", "decrypted", "auth failures", "replays"), rows,
                  (False, False, False, True, True, True, True), "nowrap")]
    if findings:
        out.append('<div class="verdict bad">' + "".join(f"<div>{e(f)}</div>" for f in findings) + "</div>")
    return "".join(out)


def _two_point_html(comparison, verdicts, plots: bool) -> str:
    """The two-point section: per direction exact loss and delay, the figure, the assumptions."""
    from callscope.report.compare import compare_dict
    from callscope.report.plots import two_point_figure

    doc = compare_dict(comparison, verdicts)
    rows = []
    for d in doc["directions"]:
        rows.append([
            e(d["sent_flow"]), e(d["received_flow"]), _fmt(d["sent"], "{}"), _fmt(d["received"], "{}"),
            _fmt(d["lost"], "{}"), _fmt(100 * d["loss_fraction"], "{:.2f}"), _fmt(d["duplicated"], "{}"),
            _fmt(d["reordered"], "{}"), _fmt(d["delay_p50_ms"], "{:.1f}"), _fmt(d["delay_p95_ms"], "{:.1f}"),
            _fmt(d["clock_drift_ppm"], "{:+.1f}"), e(d["verdict"]),
        ])
    out = [
        "<h2>Two-point analysis</h2>",
        f"<p class=\"meta\">Packets followed by payload from <span class=\"mono\">{e(Path(doc['sent']).name)}</span> "
        f"to <span class=\"mono\">{e(Path(doc['received']).name)}</span>: exact loss and one-way delay "
        "(above its minimum, clock offset and drift removed).</p>",
        _table(("flow at the sender", "as the receiver saw it", "sent", "received", "lost", "loss %", "dup", "reord",
                "delay p50 ms", "delay p95 ms", "drift ppm", "verdict"), rows,
               (False, False, True, True, True, True, True, True, True, True, True, False), "nowrap"),
    ]
    summaries = [f"{d['sent_flow']}: {f['summary']}" for d in doc["directions"]
                 for f in d["findings"] if f["pattern"] == d["verdict"]]
    if summaries:
        out.append("<ul class=\"notes\">" + "".join(f"<li>{e(x)}</li>" for x in summaries) + "</ul>")
    only = [f"only in {Path(doc['sent']).name}: {f}" for f in doc["only_in_sent"]]
    only += [f"only in {Path(doc['received']).name}: {f}" for f in doc["only_in_received"]]
    if only:
        out.append("<ul class=\"notes\">" + "".join(f"<li>{e(x)}</li>" for x in only) + "</ul>")
    if plots:
        out.append(f'<figure><img alt="two-point delay and loss" src="{_png_data_uri(two_point_figure(comparison, verdicts))}">'
                   "<figcaption>One-way delay of every packet; red ticks: each lost packet.</figcaption></figure>")
    out.append("<p class=\"meta\">Assumed: " + e("; ".join(doc["assumptions"])) + ".</p>")
    return "".join(out)


def render_html(report, *, stream_ids: Sequence[str] | None = None, plots: bool = True,
                comparison=None, comparison_verdicts: Sequence | None = None,
                plot_streams: int = DEFAULT_PLOTTED_STREAMS, keys: Sequence = ()) -> str:
    """The whole report as one HTML document (a string).

    Parameters
    ----------
    report : Report
        From :func:`callscope.analyze`.
    stream_ids : sequence of str, optional
        Plot (and embed the audio of) these streams; the tables always list all.
    plots : bool
        Embed the per-stream plots and, for the worst decodable stream of each
        call up to ``MAX_EMBEDDED_AUDIO_S`` long, its audio and spectrogram.
    plot_streams : int
        Without ``stream_ids``: plot the this many worst streams (0: all).
    keys : sequence of (KeySelector, SrtpKey)
        SRTP keys given by the user (SDES keys in the capture's SIP are used too).
    comparison, comparison_verdicts : optional
        A two-point :class:`callscope.twopoint.Comparison` of this capture with
        the other end's, and :func:`callscope.twopoint.diagnose_direction` of
        each direction: adds the two-point section.
    """
    doc = report_dict(report)
    cap = doc["capture"]
    verdict = doc["verdict"]
    name = Path(cap["path"]).name
    parts = [
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">",
        f'<meta http-equiv="Content-Security-Policy" content="{e(CSP)}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>callscope — {e(name)}</title><style>{CSS}</style></head><body>",
        f"<h1>callscope report: <span class=\"mono\">{e(name)}</span></h1>",
        f"<p class=\"meta\">{e(cap['format'])}{' (gzip)' if cap.get('compressed') else ''}, "
        f"link types {e(', '.join(cap['link_types']) or '–')}, {_fmt(cap['packets'], '{}')} packets, "
        f"{_fmt(cap['udp_datagrams'], '{}')} UDP datagrams, {_fmt(cap['duration_s'], '{:.1f}')} s. "
        f"{_plural(len(doc['streams']), 'media stream')} in {_plural(len(doc.get('calls') or []), 'call')}.</p>",
        f'<div class="verdict {_verdict_class(verdict["pattern"])}">'
        f'<div class="pattern">Verdict: {e(verdict["pattern"])}'
        f'{" (confidence " + _fmt(verdict["confidence"], "{:.2f}") + ")" if verdict["confidence"] is not None else ""}'
        f"</div><div>{e(verdict['summary'])}</div></div>",
    ]
    warnings = list(cap.get("warnings") or [])
    if warnings:
        parts.append("<ul class=\"notes\">" + "".join(f"<li>{e(w)}</li>" for w in warnings) + "</ul>")
    parts.append("<h2>Streams</h2>")
    if doc["streams"]:
        numeric = [key in NUMERIC_KEYS for _, key, _ in STREAM_COLUMNS]
        parts.append(_table([h for h, _, _ in STREAM_COLUMNS], _stream_rows(doc), numeric, "nowrap"))
        notes = [f"{s['id']}: {n}" for s in doc["streams"] for n in s.get("notes") or []]
        if notes:
            parts.append("<ul class=\"notes\">" + "".join(f"<li>{e(n)}</li>" for n in notes) + "</ul>")
    else:
        parts.append("<p>No media stream found in the capture.</p>")
    parts.append(_calls_html(doc))
    parts.append("<h2>Findings</h2>" + _findings_html(doc))
    parts.append(_sip_html(doc))
    sip_at = len(parts)
    if comparison is not None:
        parts.append(_two_point_html(comparison, comparison_verdicts, plots))
    heard: list = []
    if plots and doc["streams"]:
        from callscope.report.audio import worst_first

        every = [st.id for st in report.inventory.streams]
        if stream_ids is not None:
            plotted = list(stream_ids)
        else:
            plotted = worst_first(report, every)
            plotted = plotted[:plot_streams] if plot_streams > 0 else plotted
            plotted = [sid for sid in every if sid in set(plotted)]
        listen = _listen_set(report, plotted, stream_ids, keys)
        html_part, heard = _plots_html(report, plotted, listen, keys, len(every))
        parts.append(html_part)
    parts.insert(sip_at, _decryption_html(report, heard, keys))
    parts.append(f"<footer>callscope {e(doc['callscope_version'])}, schema {e(doc['schema'])}. "
                 "Definitions: RFC 3550 (loss, jitter), RFC 3611 (bursts), ITU-T G.107 (MOS).</footer>")
    parts.append("</body></html>\n")
    return "".join(parts)


def write_html(report, path: str | os.PathLike, **kw) -> Path:
    """Write :func:`render_html` to ``path`` (UTF-8) and return the path."""
    out = Path(path)
    out.write_text(render_html(report, **kw), encoding="utf-8")
    return out
