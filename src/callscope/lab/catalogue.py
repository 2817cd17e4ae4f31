"""The scenario catalogue: every diagnosis pattern, and the negatives real captures are full of.

:func:`catalogue` draws each scenario's parameters from realistic ranges
with a seeded generator (the same seed gives the same corpus). Ranges:

- policers at 60-98 % of the media rate, in bytes/s and packets/s, from the
  start or from mid-call;
- shapers (htb + pfifo, tbf) at 85-97 % of the media's line rate;
- i.i.d. loss 0.5-5 % (1 % twice), Gilbert–Elliott bursts of 40-160 ms mean;
- outages of 200 ms-2 s, with periods jittered by 10-20 %;
- cut-offs after 5-60 s or 50 kB and more, one-way from the start and
  mid-call, STUN requests or responses blocked;
- bottlenecks of 200-600 kbit/s shared with bursty cross traffic, with a
  short queue (congestion) or a huge one (jitter, no loss);
- negatives: clean calls over a busy access link, hang-ups with the capture
  running on (and a second call), DTX silences, relay->direct moves, ICE
  consent checks, a sender's own timing jitter replayed from a real capture.

Most calls carry 20-30 s of media, so the whole catalogue runs in about
35 minutes.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from callscope.lab.scenario import (
    A_RTP,
    B_RTP,
    STUN_PORT,
    CrossTraffic,
    Gate,
    Media,
    NftRule,
    Qdisc,
    Scenario,
    media_dports,
)

#: IP bytes per packet (IPv4 20 + UDP 8 + payload) of each codec's media, on average.
IP_BYTES = {"pcmu": 200.0, "opus": 122.0, "opaque": 130.0}
PPS = 50.0  # 20 ms frames
ETH_HEADER = 14  # tc counts the Ethernet header at the egress veth
CODECS = ("pcmu", "opus", "opaque")

#: Real captures whose departure pattern the sender-jitter scenarios replay.
REPLAY_CAPTURES = ("lundgrel__mario_choppy_speech.pcap", "asterisk__CARRIER_G711U.pcap")


def replay_source(name: str) -> str | None:
    """Where a replay capture is: ``$CALLSCOPE_CAPTURES``, ``../shared/captures``, or None."""
    dirs = [os.environ.get("CALLSCOPE_CAPTURES", ""), "/work/shared/captures",
            str(Path(__file__).resolve().parents[3] / "fixtures")]
    for d in dirs:
        if d and (Path(d) / name).is_file():
            return str(Path(d) / name)
    return None


def _r(x: float, nd: int = 3) -> float:
    return round(float(x), nd)


def background(rng: np.random.Generator, directions: tuple[str, ...]) -> tuple[tuple[Qdisc, ...], tuple[CrossTraffic, ...]]:
    """A busy access link per direction: a tbf of 1.5-5 Mbit/s, 10-60 % cross load.

    The cross traffic's bursts come in clumps of 2-8 full-size packets, so a
    voice packet now and then waits behind a few to 50 ms of them:
    background jitter, but no loss (the queue holds 150 ms and more).
    """
    qd, xt = [], []
    for d in directions:
        rate = float(rng.uniform(1.5e6, 5e6))
        # A 2-packet token bucket: clumps queue instead of passing at line rate.
        qd.append(Qdisc(d, "tbf", int(rate), burst_bytes=3000, limit_bytes=int(rate / 8 * 0.15) + 12000))
        xt.append(CrossTraffic(d, base_kbit=_r(rate / 1000 * rng.uniform(0.05, 0.2), 1),
                               on_kbit=_r(rate / 1000 * rng.uniform(0.2, 0.45), 1),
                               on_mean_s=_r(rng.uniform(0.2, 1.0)), off_mean_s=_r(rng.uniform(1.0, 4.0)),
                               clump=int(rng.integers(2, 9))))
    return tuple(qd), tuple(xt)


def _other(d: str) -> str:
    return "b->a" if d == "a->b" else "a->b"


def _vantage(d: str) -> str:
    return "a" if d == "b->a" else "b"


def _ports_match(d: str, rtcp: bool = True) -> str:
    ports = media_dports(d)[:2] if rtcp else media_dports(d)[:1]
    return f"udp dport {{ {', '.join(map(str, ports))} }}" if len(ports) > 1 else f"udp dport {ports[0]}"


def _clean(rng: np.random.Generator, i: int) -> list[Scenario]:
    out = []
    for codec, two_way in (("pcmu", True), ("opus", True), ("opaque", True), ("pcmu", False)):
        qd, xt = background(rng, ("a->b", "b->a"))
        dur = _r(rng.uniform(20, 30), 1)
        out.append(Scenario(f"clean_{codec}_{'call' if two_way else 'oneway'}_xt", "clean",
                            Media(codec, dur, two_way=two_way), qdiscs=qd, cross=xt,
                            description=f"{codec} call over a busy access link, no impairment"))
    return out


def _negatives(rng: np.random.Generator, i: int) -> list[Scenario]:
    out = []
    for k, codec in enumerate(("pcmu", "opus", "opaque")):
        qd, xt = background(rng, ("a->b", "b->a"))
        tail = _r(rng.uniform(4, 8), 1)
        second = (_r(rng.uniform(2, 4), 1), _r(rng.uniform(8, 12), 1)) if k == 0 else None
        out.append(Scenario(f"hangup_{codec}{'_second_call' if second else ''}", "clean",
                            Media(codec, _r(rng.uniform(15, 22), 1), tail_s=tail, second_call=second),
                            qdiscs=qd, cross=xt, params={"tail_s": tail},
                            description=f"ordinary hang-up (BYE), capture runs on {tail} s"
                            + (", then a second call" if second else "")))
    # A messenger call always carries media both ways: the one-way DTX
    # negative is an RTP recording, whose SDP says who only listens.
    for codec, two_way in (("opaque", True), ("opus", True), ("opus", False)):
        qd, xt = background(rng, ("a->b", "b->a"))
        out.append(Scenario(f"dtx_{codec}_{'call' if two_way else 'oneway'}", "clean",
                            Media(codec, _r(rng.uniform(22, 30), 1), two_way=two_way, dtx=True,
                                  sip=codec != "opaque", rtcp=codec != "opaque"),
                            qdiscs=qd, cross=xt, description="talk spurts and DTX silences, no impairment"))
    for codec in ("opaque", "opus"):
        qd, xt = background(rng, ("a->b", "b->a"))
        until = _r(rng.uniform(8, 15), 2)
        out.append(Scenario(f"relay_to_direct_{codec}", "clean",
                            Media(codec, _r(rng.uniform(22, 28), 1), relay_until_s=until, sip=codec != "opaque",
                                  rtcp=codec != "opaque", dtx=codec == "opaque"),
                            qdiscs=qd, cross=xt, params={"relay_until_s": until},
                            description=f"media via a relay until {until} s, then direct"))
    for name in REPLAY_CAPTURES:
        src = replay_source(name)
        if src is None:
            continue
        qd, xt = background(rng, ("a->b", "b->a"))
        out.append(Scenario(f"sender_jitter_{name.split('__')[1].split('.')[0].lower()}", "clean",
                            Media("pcmu", _r(rng.uniform(22, 28), 1), replay=src), accept=("clean", "jitter"),
                            qdiscs=qd, cross=xt, params={"replayed": name},
                            description=f"sender timing replays {name}: jitter made by the sender, not the network"))
    qd, xt = background(rng, ("a->b", "b->a"))
    out.append(Scenario("ice_consent_opus", "clean", Media("opus", _r(rng.uniform(22, 28), 1), ice=True),
                        qdiscs=qd, cross=xt, description="ICE checks before media and consent checks every ~5 s"))
    return out


def _random_loss(rng: np.random.Generator, i: int) -> list[Scenario]:
    out = []
    for k, per_mille in enumerate((10, 10, int(rng.integers(5, 20)), int(rng.integers(20, 50)), int(rng.integers(5, 50)))):
        d = ("a->b", "a->b", "b->a", "a->b", "both")[k]
        codec = CODECS[k % 3]
        dirs = ("a->b", "b->a") if d == "both" else (d,)
        rules = tuple(NftRule(x, _ports_match(x), f"numgen random mod 1000 < {per_mille}") for x in dirs)
        qd, xt = background(rng, ("a->b", "b->a"))
        out.append(Scenario(f"random_{per_mille / 10:g}pct_{codec}_{d.replace('->', '')}", "random-loss",
                            Media(codec, _r(rng.uniform(22, 30), 1)), vantage=_vantage(dirs[0]), rules=rules,
                            qdiscs=qd, cross=xt, params={"loss_pct": per_mille / 10, "direction": d},
                            description=f"i.i.d. loss {per_mille / 10:g} % (nft numgen random) on {d}"))
    return out


def _ge_gates(rng: np.random.Generator, d: str, duration: float, bad_ms: float, good_s: float,
              per_mille: int) -> tuple[Gate, ...]:
    gates, t = [], float(rng.exponential(good_s))
    ports = media_dports(d)[:2]
    while t < duration:
        length = float(np.clip(rng.exponential(bad_ms / 1000), 0.02, 0.19))
        gates.append(Gate(d, _r(t, 4), _r(length, 4), ports, per_mille))
        t += length + float(rng.exponential(good_s))
    return tuple(gates)


def _bursty(rng: np.random.Generator, i: int) -> list[Scenario]:
    out = []
    for k in range(4):
        d = "a->b" if k != 2 else "b->a"
        codec = CODECS[k % 3]
        bad_ms, good_s = _r(rng.uniform(40, 160), 1), _r(rng.uniform(0.6, 3.0), 2)
        per_mille = 1000 if k % 2 == 0 else int(rng.integers(500, 900))
        dur = _r(rng.uniform(24, 30), 1)
        qd, xt = background(rng, ("a->b", "b->a"))
        out.append(Scenario(f"bursty_ge_b{bad_ms:.0f}ms_g{good_s:.1f}s_{codec}", "bursty-loss",
                            Media(codec, dur), vantage=_vantage(d), gates=_ge_gates(rng, d, dur, bad_ms, good_s, per_mille),
                            qdiscs=qd, cross=xt,
                            params={"bad_mean_ms": bad_ms, "good_mean_s": good_s, "bad_loss": per_mille / 1000,
                                    "direction": d},
                            description=f"Gilbert-Elliott bursts: bad state {bad_ms} ms mean (loss {per_mille / 10:g} %), "
                            f"good {good_s} s mean, on {d}"))
    return out


def _outage(rng: np.random.Generator, i: int) -> list[Scenario]:
    out = []
    lengths = (0.2, 2.0, float(rng.uniform(0.3, 0.8)), float(rng.uniform(0.8, 1.5)))
    for k, length in enumerate(lengths):
        d = "a->b" if k != 3 else "b->a"
        codec = CODECS[k % 3]
        period = max(float(rng.uniform(1.5, 6.0)), length / 0.45)
        jit = float(rng.uniform(0.1, 0.2))
        dur = _r(rng.uniform(24, 30), 1)
        t, starts = float(rng.uniform(1.0, 3.0)), []
        while t + length < dur:
            starts.append(t)
            t += period * (1 + rng.uniform(-jit, jit))
        gates = tuple(Gate(d, _r(s, 4), _r(length, 4), media_dports(d)[:2]) for s in starts)
        qd, xt = background(rng, ("a->b", "b->a"))
        out.append(Scenario(f"outage_{length * 1000:.0f}ms_every{period:.1f}s_{codec}", "intermittent-outage",
                            Media(codec, dur), vantage=_vantage(d), gates=gates, qdiscs=qd, cross=xt,
                            params={"outage_s": _r(length), "period_s": _r(float(np.mean(np.diff(starts)))),
                                    "period_jitter": _r(jit), "mode": "periodic", "direction": d},
                            description=f"{length * 1000:.0f} ms outages every {period:.2f} s (±{jit * 100:.0f} %) on {d}"))
    return out


def _policing(rng: np.random.Generator, i: int) -> list[Scenario]:
    out = []
    plan = (("bytes", 0.6, 0.0), ("bytes", float(rng.uniform(0.7, 0.85)), 0.0), ("bytes", 0.92, None),
            ("bytes", float(rng.uniform(0.75, 0.9)), None), ("packets", 0.6, 0.0), ("packets", 0.98, 0.0),
            ("packets", float(rng.uniform(0.7, 0.9)), None))
    for k, (unit, frac, start) in enumerate(plan):
        d = "a->b" if k % 3 else "b->a"
        codec = CODECS[k % 3]
        if start is None:
            start = _r(rng.uniform(3, 8), 2)
        ip_rate = IP_BYTES[codec] * PPS
        if unit == "bytes":
            rate = int(frac * ip_rate)
            burst = int(IP_BYTES[codec] * rng.uniform(1, 8))
            # The nft byte bucket holds rate x 1 s + burst: it empties after that over the excess rate.
            first_drop = start + (rate + burst) / max(ip_rate - rate, 1.0)
            expr = f"limit rate over {rate} bytes/second burst {burst} bytes"
        else:
            rate = max(1, int(round(frac * PPS)))
            burst = int(rng.integers(2, 8))
            first_drop = start + burst / max(PPS - rate, 0.5)
            expr = f"limit rate over {rate}/second burst {burst} packets"
        dur = _r(float(np.clip(first_drop + 15, 22, 60)), 1)
        late = start if start > 0 else None
        qd, xt = background(rng, (_other(d),))
        out.append(Scenario(f"police_{unit}_{frac * 100:.0f}pct_{codec}{'_mid' if late else ''}", "policing",
                            Media(codec, dur), vantage=_vantage(d),
                            rules=(NftRule(d, _ports_match(d, rtcp=False), expr, start_s=late),),
                            qdiscs=qd, cross=xt,
                            params={"unit": unit, "nft_rate": rate, "nft_burst": burst, "rate_fraction": _r(frac),
                                    "start_s": float(start), "direction": d},
                            description=f"nft policer {expr} on {d} RTP from {start} s ({frac * 100:.0f} % of the media rate)"))
    return out


def _shaping(rng: np.random.Generator, i: int) -> list[Scenario]:
    out = []
    for k in range(4):
        d = "a->b" if k != 1 else "b->a"
        codec = ("pcmu", "pcmu", "opus", "opaque")[k]
        frac = (0.97, float(rng.uniform(0.85, 0.95)), float(rng.uniform(0.85, 0.95)), 0.9)[k]
        l2_rate = (IP_BYTES[codec] + ETH_HEADER) * PPS * 8  # bit/s
        rate = int(frac * l2_rate)
        dur = _r(rng.uniform(25, 30), 1)
        excess_pps = (1 - frac) * PPS
        limit = int(np.clip(excess_pps * dur * 0.5, 5, 60))
        frame = IP_BYTES[codec] + ETH_HEADER
        if k % 2 == 0:
            q = Qdisc(d, "htb", rate, burst_bytes=int(2 * frame), limit_packets=limit)
            what = f"htb {rate} bit/s + pfifo {limit} packets"
        else:
            q = Qdisc(d, "tbf", rate, burst_bytes=int(2 * frame), limit_bytes=int(limit * frame))
            what = f"tbf {rate} bit/s, {int(limit * frame)} B queue"
        qd, xt = background(rng, (_other(d),))
        out.append(Scenario(f"shape_{q.kind}_{frac * 100:.0f}pct_{codec}", "shaping", Media(codec, dur),
                            vantage=_vantage(d), qdiscs=(q, *qd), cross=xt,
                            params={"rate_bit": rate, "rate_fraction": _r(frac), "queue_packets": limit, "direction": d},
                            description=f"shaper {what} on {d} ({frac * 100:.0f} % of the media's line rate)"))
    return out


def _bottleneck(rng: np.random.Generator, label: str, n: int) -> list[Scenario]:
    out = []
    for k in range(n):
        d = "a->b" if k != 2 else "b->a"
        codec = CODECS[k % 3]
        rate = int(rng.uniform(200e3, 600e3))
        if label == "congestion":
            limit = int(rate / 8 * rng.uniform(0.06, 0.2))
            on = rate / 1000 * rng.uniform(1.1, 1.6)
            on_mean, off_mean = rng.uniform(0.3, 1.5), rng.uniform(1.0, 3.0)
        else:
            limit = 2_000_000
            on = rate / 1000 * rng.uniform(1.0, 1.5)
            on_mean, off_mean = rng.uniform(0.2, 0.6), rng.uniform(1.5, 3.0)
        xt = CrossTraffic(d, base_kbit=_r(rate / 1000 * rng.uniform(0.05, 0.15), 1), on_kbit=_r(on, 1),
                          on_mean_s=_r(on_mean), off_mean_s=_r(off_mean), clump=int(rng.integers(1, 5)))
        q = Qdisc(d, "tbf", rate, burst_bytes=3000, limit_bytes=limit)
        qd2, xt2 = background(rng, (_other(d),))
        out.append(Scenario(f"{'congestion' if label == 'congestion' else 'jitter'}_tbf{rate // 1000}k_xt{on:.0f}k_{codec}",
                            label, Media(codec, _r(rng.uniform(24, 30), 1)), vantage=_vantage(d),
                            qdiscs=(q, *qd2), cross=(xt, *xt2),
                            params={"rate_bit": rate, "limit_bytes": limit, "xt_on_kbit": _r(on, 1),
                                    "xt_on_mean_s": _r(on_mean), "xt_off_mean_s": _r(off_mean), "direction": d},
                            description=f"tbf {rate // 1000} kbit/s, {limit} B queue, shared with bursty cross "
                            f"traffic ({on:.0f} kbit/s bursts) on {d}"))
    return out


def _congestion(rng: np.random.Generator, i: int) -> list[Scenario]:
    return _bottleneck(rng, "congestion", 4)


def _jitter(rng: np.random.Generator, i: int) -> list[Scenario]:
    return _bottleneck(rng, "jitter", 4)


def _cutoff(rng: np.random.Generator, i: int) -> list[Scenario]:
    out = []
    plan = (("time", float(rng.uniform(5, 8))), ("time", float(rng.uniform(8, 18))), ("time", float(rng.uniform(45, 60))),
            ("bytes", 50_000.0), ("bytes", float(rng.uniform(80_000, 150_000))))
    for k, (kind, x) in enumerate(plan):
        codec = ("pcmu", "opus", "opaque", "pcmu", "opus")[k]
        rules: tuple[NftRule, ...] = ()
        gates: tuple[Gate, ...] = ()
        if kind == "time":
            dur = _r(max(x + rng.uniform(8, 14), 22), 1)
            gates = tuple(Gate(d, _r(x, 3), None, media_dports(d)[:2]) for d in ("a->b", "b->a"))
            params: dict = {"cut_at_s": _r(x), "direction": "a->b"}
            what = f"everything of the call's media dropped from {x:.1f} s (both directions)"
        else:
            ip_rate = IP_BYTES[codec] * PPS
            dur = _r(max(x / ip_rate + rng.uniform(8, 14), 22), 1)
            rules = tuple(NftRule(d, _ports_match(d), f"quota over {int(x)} bytes") for d in ("a->b", "b->a"))
            params = {"quota_bytes": int(x), "direction": "a->b"}
            what = f"nft quota: each direction's media dropped after {int(x)} bytes"
        qd, xt = background(rng, ("a->b", "b->a"))
        out.append(Scenario(f"cutoff_{kind}_{x:.0f}{'s' if kind == 'time' else 'B'}_{codec}", "cutoff",
                            Media(codec, dur), accept=("cutoff", "one-way"), rules=rules, gates=gates,
                            qdiscs=qd, cross=xt, params=params, description=what))
    return out


def _one_way(rng: np.random.Generator, i: int) -> list[Scenario]:
    out = []
    plan = (("a->b", 0.0, False), ("b->a", 0.0, True), ("a->b", float(rng.uniform(3, 10)), False),
            ("b->a", float(rng.uniform(3, 10)), True))
    for k, (d, start, with_rtcp) in enumerate(plan):
        codec = ("pcmu", "opus", "opus", "pcmu")[k]
        ports = media_dports(d)[:2] if with_rtcp else media_dports(d)[:1]
        gates = (Gate(d, _r(start), None, ports),) if start > 0 else ()
        rules = () if start > 0 else (NftRule(d, _ports_match(d, with_rtcp)),)
        qd, xt = background(rng, (_other(d),))
        accept = ("one-way",) if start == 0 else ("one-way", "cutoff")
        out.append(Scenario(f"oneway_{d.replace('->', '')}_{'rtp_rtcp' if with_rtcp else 'rtp'}_from{start:.0f}s_{codec}",
                            "one-way", Media(codec, _r(rng.uniform(22, 28), 1)), accept=accept, vantage=_vantage(d),
                            rules=rules, gates=gates, qdiscs=qd, cross=xt,
                            params={"start_s": _r(start), "rtcp_dropped": "yes" if with_rtcp else "no", "direction": d},
                            description=f"{d} media {'and RTCP ' if with_rtcp else ''}dropped from {start:.1f} s, "
                            "signalling and the other direction fine"))
    return out


def _setup_blocked(rng: np.random.Generator, i: int) -> list[Scenario]:
    out = []
    for k, what in enumerate(("requests", "requests", "responses")):
        if what == "requests":
            rule = NftRule("a->b", f"udp dport {STUN_PORT}")
        else:
            rule = NftRule("b->a", f"udp sport {STUN_PORT}")
        out.append(Scenario(f"setup_blocked_stun_{what}_{k}", "setup-blocked",
                            Media("opaque", _r(rng.uniform(15, 25), 1), setup_only=True, sip=k == 1, rtcp=False),
                            vantage="a", rules=(rule,), params={"blocked": what, "direction": rule.direction},
                            description=f"STUN binding {what} to B:{STUN_PORT} dropped: media never starts"))
    return out


def _downshift(rng: np.random.Generator, i: int) -> list[Scenario]:
    out = []
    for codec in ("opus", "opaque"):
        at = _r(rng.uniform(8, 15), 2)
        qd, xt = background(rng, ("a->b", "b->a"))
        out.append(Scenario(f"downshift_{codec}_at{at:.0f}s", "codec-downshift",
                            Media(codec, _r(rng.uniform(24, 30), 1), downshift_at_s=at, sip=codec == "opus",
                                  rtcp=codec == "opus"),
                            qdiscs=qd, cross=xt, params={"time_s": at, "direction": "a->b"},
                            description=f"both senders move to 40 ms frames, 0.6 x payload, at {at} s"))
    return out


#: pattern -> generator of its scenarios (the negatives are labelled clean).
GENERATORS: dict[str, Callable[[np.random.Generator, int], list[Scenario]]] = {
    "clean": _clean,
    "negatives": _negatives,
    "random-loss": _random_loss,
    "bursty-loss": _bursty,
    "congestion": _congestion,
    "intermittent-outage": _outage,
    "policing": _policing,
    "shaping": _shaping,
    "cutoff": _cutoff,
    "one-way": _one_way,
    "setup-blocked": _setup_blocked,
    "jitter": _jitter,
    "codec-downshift": _downshift,
}


def catalogue(seed: int = 1, only: tuple[str, ...] = ()) -> list[Scenario]:
    """Every scenario of the catalogue, parameters drawn with ``seed``.

    ``only`` restricts to scenarios whose label (or generator name, e.g.
    ``negatives``) is listed; the draws of the others still happen, so a
    scenario's parameters do not depend on ``only``.
    """
    out = []
    for k, (name, gen) in enumerate(GENERATORS.items()):
        rng = np.random.default_rng([seed, k])
        for j, s in enumerate(gen(rng, k)):
            if only and name not in only and s.label not in only:
                continue
            out.append(_seeded(s, seed * 10_000 + k * 100 + j))
    return out


def _seeded(s: Scenario, seed: int) -> Scenario:
    from dataclasses import replace

    return replace(s, seed=seed)


def find(name: str, seed: int = 1) -> Scenario:
    """The catalogue scenario called ``name`` (drawn with ``seed``)."""
    for s in catalogue(seed):
        if s.name == name:
            return s
    raise KeyError(name)


__all__ = ["catalogue", "find", "GENERATORS", "A_RTP", "B_RTP"]
