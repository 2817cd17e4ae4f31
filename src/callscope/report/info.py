"""``callscope info`` output: text and JSON forms of a CaptureSummary."""

from __future__ import annotations

import datetime as dt

from callscope.capture.contents import CaptureSummary


def _iso(ns: int | None) -> str | None:
    if ns is None:
        return None
    return dt.datetime.fromtimestamp(ns / 1e9, dt.UTC).isoformat(timespec="microseconds")


def info_dict(s: CaptureSummary) -> dict:
    """JSON object for one capture (keys documented in the README)."""
    i = s.info
    return {
        "path": i.path,
        "format": i.format,
        "compressed": i.compressed,
        "byte_order": i.byte_order,
        "link_types": i.link_types,
        "packets": i.packets,
        "udp_datagrams": i.udp_datagrams,
        "first_time": i.first_time_ns / 1e9 if i.first_time_ns is not None else None,
        "last_time": i.last_time_ns / 1e9 if i.last_time_ns is not None else None,
        "first_time_iso": _iso(i.first_time_ns),
        "duration_s": round(i.duration_s, 9),
        "other": {k: v for k, v in i.other.items() if v},
        "snaplen_truncated": i.snaplen_truncated,
        "reassembled": i.reassembled,
        "truncated": i.truncated,
        "warnings": list(i.warnings),
        "flow_count": s.flow_count,
        "flows": [
            {
                "src": f.src, "src_port": f.src_port, "dst": f.dst, "dst_port": f.dst_port,
                "packets": f.packets, "bytes": f.bytes,
                "packets_per_s": round(f.packets_per_s, 3), "mean_size": round(f.mean_size, 1),
                "duration_s": round(f.duration_s, 6),
            }
            for f in s.flows
        ],
    }


def info_text(s: CaptureSummary) -> str:
    """Human-readable summary of one capture."""
    i = s.info
    fmt = i.format + (" (gzip)" if i.compressed else "")
    lines = [
        f"{i.path}",
        f"  format      {fmt}, {i.byte_order}-endian",
        f"  link types  {', '.join(i.link_types) or '-'}",
        f"  packets     {i.packets}  over {i.duration_s:.3f} s (from {_iso(i.first_time_ns) or '-'})",
        f"  UDP         {i.udp_datagrams} datagrams in {s.flow_count} flows"
        + (f", {i.reassembled} reassembled from fragments" if i.reassembled else "")
        + (f", {i.snaplen_truncated} cut by snaplen" if i.snaplen_truncated else ""),
    ]
    other = ", ".join(f"{k} {v}" for k, v in i.other.items() if v)
    lines.append(f"  other       {other or 'none'}")
    if s.flows:
        lines.append("  top UDP flows:")
        lines.append(f"    {'source':>28} {'destination':>28} {'pkts':>7} {'bytes':>9} {'pkt/s':>7} {'mean B':>7}")
        for f in s.flows:
            lines.append(
                f"    {f'{f.src}:{f.src_port}':>28} {f'{f.dst}:{f.dst_port}':>28} {f.packets:>7} "
                f"{f.bytes:>9} {f.packets_per_s:>7.1f} {f.mean_size:>7.1f}"
            )
    return "\n".join(lines)
