"""Terminal, Markdown and CSV forms of a Report, and the escaping every output uses.

Everything a capture controls (file names, SIP Call-IDs, codec names from
SDP, warnings quoting them) is escaped for the medium it goes to:

- terminal: control characters (C0, C1, DEL), bidirectional overrides and
  undecodable file-name bytes are shown as ``\\x1b``-style escapes
  (:func:`terminal_safe`), so a Call-ID cannot retitle a window or clear
  the screen;
- CSV: a text cell starting with ``=``, ``+``, ``-``, ``@``, tab or carriage
  return gets a leading ``'`` so spreadsheets show it instead of evaluating
  it (OWASP, "CSV Injection") (:func:`csv_safe`);
- Markdown: ASCII punctuation that Markdown or inline HTML would interpret
  is backslash-escaped (CommonMark 0.31 §2.4) (:func:`markdown_safe`).
"""

from __future__ import annotations

import csv
import io
import re

from callscope.report.jsonout import report_dict

#: C0 and C1 controls, DEL, line/paragraph separators, bidi embeddings,
#: overrides and isolates (Unicode TR 9), and lone surrogates (what Python
#: makes of file-name bytes that are not UTF-8).
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
#: OWASP CSV injection: cells a spreadsheet would read as a formula or command
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
#: ASCII punctuation Markdown (or the HTML it allows) gives a meaning
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()<>#+!|~&$])")


def _escape(m: re.Match) -> str:
    c = ord(m.group())
    if 0xDC80 <= c <= 0xDCFF:  # a byte >= 0x80 that was not UTF-8 (PEP 383 surrogateescape)
        return f"\\x{c - 0xDC00:02x}"
    return f"\\x{c:02x}" if c <= 0xFF else f"\\u{c:04x}"


def terminal_safe(text: str) -> str:
    """``text`` with every control, bidi-override and undecodable character shown as an escape.

    Examples
    --------
    >>> print(terminal_safe("call\\x1b]0;pwned\\x07"))
    call\\x1b]0;pwned\\x07
    """
    return _UNSAFE.sub(_escape, text)


def csv_safe(value: object) -> object:
    """A CSV cell: text made terminal-safe and kept from being read as a formula; other values as they are."""
    if not isinstance(value, str):
        return value
    value = terminal_safe(value)
    return "'" + value if value.startswith(_FORMULA_START) else value


def markdown_safe(text: str) -> str:
    """``text`` as literal Markdown: one line, special punctuation backslash-escaped."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", terminal_safe(text))

COLUMNS = (
    ("id", "id", "{}"),
    ("kind", "kind", "{}"),
    ("from", "src_ep", "{}"),
    ("to", "dst_ep", "{}"),
    ("ssrc", "ssrc_hex", "{}"),
    ("codec", "codec", "{}"),
    ("pkts", "packets", "{}"),
    ("lost", "missing", "{}"),  # really missing; Wireshark's expected - received is `lost` in JSON
    ("loss%", "loss_pct", "{:.1f}"),
    ("jit ms", "jitter_mean_ms", "{:.2f}"),
    ("jit max", "jitter_max_ms", "{:.2f}"),
    ("Δmax ms", "delta_max_ms", "{:.1f}"),
    ("MOS", "mos", "{:.2f}"),
    ("verdict", "verdict", "{}"),
)


def _rows(doc: dict) -> list[dict]:
    rows = []
    for s in doc["streams"]:
        r = dict(s)
        r["src_ep"] = f"{s['src']}:{s['src_port']}"
        r["dst_ep"] = f"{s['dst']}:{s['dst_port']}"
        lf = s.get("loss_fraction")
        r["loss_pct"] = lf * 100 if lf is not None else None
        if s.get("loss_inferred"):
            r["verdict"] = f"{s['verdict']} (inferred loss)"
        rows.append(r)
    return rows


def _cell(row: dict, key: str, fmt: str) -> str:
    v = row.get(key)
    if v is None or v == "":
        return "-"
    try:
        return fmt.format(v)
    except (ValueError, TypeError):
        return str(v)


def _table(rows: list[dict]) -> list[list[str]]:
    return [[_cell(r, key, fmt) for _, key, fmt in COLUMNS] for r in rows]


def text_report(report) -> str:
    """Compact per-call / per-stream table and the findings in plain words."""
    doc = report_dict(report)
    cap = doc["capture"]
    out = [
        f"{cap['path']}: {cap['format']}, {cap['packets']} packets, {cap['udp_datagrams']} UDP, "
        f"{cap['duration_s']:.1f} s",
        f"verdict: {doc['verdict']['pattern']}"
        + (f" ({doc['verdict']['confidence']:.2f})" if doc["verdict"]["confidence"] is not None else "")
        + f" - {doc['verdict']['summary']}",
        "",
    ]
    rows = _rows(doc)
    if not rows:
        out.append("no media streams found")
    else:
        by_id = {r["id"]: r for r in rows}
        groups = []
        used = set()
        for call in doc["calls"]:
            ids = [i for i in call.get("stream_ids", []) if i in by_id]
            if ids:
                groups.append((f"call {call.get('id', '')}" + (f" ({call['call_id']})" if call.get("call_id") else ""), ids))
                used.update(ids)
        rest = [r["id"] for r in rows if r["id"] not in used]
        if rest:
            groups.append(("unpaired streams", rest))
        header = [c[0] for c in COLUMNS]
        body = _table(rows)
        widths = [max(len(h), *(len(b[i]) for b in body)) for i, h in enumerate(header)]
        index = {r["id"]: k for k, r in enumerate(rows)}
        for title, ids in groups:
            out.append(title)
            out.append("  " + "  ".join(h.rjust(w) for h, w in zip(header, widths, strict=True)))
            for i in ids:
                out.append("  " + "  ".join(c.rjust(w) for c, w in zip(body[index[i]], widths, strict=True)))
            out.append("")
    if doc["findings"]:
        out.append("findings:")
        for f in sorted(doc["findings"], key=lambda f: -(f.get("confidence") or 0)):
            where = f.get("stream_id") or f.get("call_id") or ""
            line = f"  [{f['pattern']} {f.get('confidence', 0):.2f}] {where}: {f.get('summary', '')}"
            if f.get("audible"):
                line += f" Audible effect: {f['audible']}."
            out.append(line)
    if doc.get("notes"):
        out.append("notes:")
        out.extend(f"  {n}" for n in doc["notes"])
    srtcp = _srtcp_lines(doc)
    if srtcp:
        out.append("SRTCP:")
        out.extend(f"  {line}" for line in srtcp)
    for w in cap["warnings"]:
        out.append(f"warning: {w}")
    return "\n".join(terminal_safe(line) for line in out).rstrip() + "\n"


def _srtcp_lines(doc: dict) -> list[str]:
    """Per SRTCP sender decrypted with a key: its reports decrypted, or the authentication finding."""
    out = []
    for r in (doc.get("rtcp") or {}).get("srtcp") or []:
        who = f"0x{r['ssrc']:08x}" + (f" ({', '.join(r['stream_ids'])})" if r["stream_ids"] else "")
        said = r["finding"] or (f"{r['decrypted']} of {r['packets']} SRTCP packets decrypted "
                                f"({r['suite']}, key from {r['key_source']})")
        out.append(f"{who}: {said}")
    return out


def markdown_report(report) -> str:
    """Markdown table of the streams and a list of the findings."""
    doc = report_dict(report)
    rows = _rows(doc)
    header = [c[0] for c in COLUMNS]
    lines = [
        f"### {markdown_safe(doc['capture']['path'])}",
        "",
        f"**Verdict: {doc['verdict']['pattern']}** — {markdown_safe(doc['verdict']['summary'])}",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    for r in _table(rows):
        lines.append("| " + " | ".join(markdown_safe(c) for c in r) + " |")
    if doc["findings"]:
        lines += ["", "Findings:", ""]
        for f in doc["findings"]:
            lines.append(f"- **{f['pattern']}** ({f.get('confidence', 0):.2f}) {markdown_safe(f.get('summary', ''))}")
    if doc.get("notes"):
        lines += ["", "Notes:", ""]
        lines += [f"- {markdown_safe(n)}" for n in doc["notes"]]
    if _srtcp_lines(doc):
        lines += ["", "SRTCP:", ""]
        lines += [f"- {markdown_safe(line)}" for line in _srtcp_lines(doc)]
    return "\n".join(lines) + "\n"


def csv_report(report) -> str:
    """One CSV row per stream with every scalar metric."""
    doc = report_dict(report)
    streams = doc["streams"]
    keys: list[str] = []
    for s in streams:
        for k, v in s.items():
            if k not in keys and not isinstance(v, (dict, list)):
                keys.append(k)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=["capture", *keys], extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for s in streams:
        w.writerow({"capture": csv_safe(doc["capture"]["path"]), **{k: csv_safe(s.get(k)) for k in keys}})
    return buf.getvalue()
