"""Terminal, Markdown and CSV forms of a Report."""

from __future__ import annotations

import csv
import io

from callscope.report.jsonout import report_dict

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
    for w in cap["warnings"]:
        out.append(f"warning: {w}")
    return "\n".join(out).rstrip() + "\n"


def markdown_report(report) -> str:
    """Markdown table of the streams and a list of the findings."""
    doc = report_dict(report)
    rows = _rows(doc)
    header = [c[0] for c in COLUMNS]
    lines = [
        f"### {doc['capture']['path']}",
        "",
        f"**Verdict: {doc['verdict']['pattern']}** — {doc['verdict']['summary']}",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    for r in _table(rows):
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in r) + " |")
    if doc["findings"]:
        lines += ["", "Findings:", ""]
        for f in doc["findings"]:
            lines.append(f"- **{f['pattern']}** ({f.get('confidence', 0):.2f}) {f.get('summary', '')}")
    if doc.get("notes"):
        lines += ["", "Notes:", ""]
        lines += [f"- {n}" for n in doc["notes"]]
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
        w.writerow({"capture": doc["capture"]["path"], **{k: s.get(k) for k in keys}})
    return buf.getvalue()
