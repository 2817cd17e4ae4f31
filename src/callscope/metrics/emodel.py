"""ITU-T G.107 E-model: transmission rating R and estimated MOS.

Implements G.107 (06/2015) §7: ``R = Ro - Is - Id - Ie,eff + A`` with every
term computed from the standard's default parameter values (Table 3) except
those a capture tells us: the codec (Ie, Bpl from ITU-T G.113 Appendix I),
the packet-loss probability Ppl and its burstiness BurstR, and, when known,
the mean one-way delay Ta (used also for T and Tr = 2 T, the echo paths).
With all defaults R = 93.2 (G.107 §7.7). MOS from R per G.107 Annex B.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

# G.107 (06/2015) Table 3, default values.
SLR = 8.0  # send loudness rating, dB
RLR = 2.0  # receive loudness rating, dB
STMR = 15.0  # sidetone masking rating, dB
LSTR = 18.0  # listener sidetone rating, dB
DS = 3.0  # D-value of telephone, send side
DR = 3.0  # D-value of telephone, receive side
TELR = 65.0  # talker echo loudness rating, dB
WEPL = 110.0  # weighted echo path loss, dB
QDU = 1.0  # number of quantization distortion units
NC = -70.0  # circuit noise referred to 0 dBr point, dBm0p
NFOR = -64.0  # noise floor at the receive side, dBmp
PS = 35.0  # room noise at the send side, dB(A)
PR = 35.0  # room noise at the receive side, dB(A)
ADVANTAGE = 0.0  # advantage factor A (conventional wirebound)
DELAY_FREE_MS = 100.0  # G.107 §7.4: Idd = 0 for Ta <= 100 ms


@dataclass(frozen=True)
class CodecImpairment:
    """One row of the codec table: equipment impairment Ie, robustness Bpl."""

    name: str
    ie: float
    bpl: float
    source: str


#: Ie / Bpl per codec. Narrowband rows from ITU-T G.113 (11/2007) Appendix I
#: (Tables I.1 and I.3). G.107 is a narrowband model; wideband codecs are
#: rated on the narrowband scale, stated per row.
CODECS: dict[str, CodecImpairment] = {
    "G711-PLC": CodecImpairment(
        "G.711 with PLC", 0.0, 25.1, "G.113 App. I Table I.3 (G.711 App. I PLC)"
    ),
    "G711": CodecImpairment("G.711 without PLC", 0.0, 4.3, "G.113 App. I Table I.3"),
    "G729A": CodecImpairment("G.729A + VAD", 11.0, 19.0, "G.113 App. I Table I.3"),
    "G723.1": CodecImpairment("G.723.1 6.3 kbit/s + VAD", 15.0, 16.1, "G.113 App. I Table I.3"),
    "GSM-FR": CodecImpairment(
        "GSM-FR",
        20.0,
        4.3,
        "Ie from G.113 App. I Table I.1; no Bpl tabulated, G.711 no-PLC value assumed",
    ),
    "OPUS": CodecImpairment(
        "Opus",
        0.0,
        25.1,
        "not in G.113 App. I; rated on the narrowband scale like G.711 with PLC (assumption)",
    ),
    "UNKNOWN": CodecImpairment(
        "unknown codec",
        0.0,
        25.1,
        "codec not identified; rated like G.711 with PLC (assumption)",
    ),
    "AMR-WB": CodecImpairment(
        "AMR-WB",
        0.0,
        25.1,
        "wideband (G.107.1 scale) value not used; rated like G.711 with PLC (assumption)",
    ),
}

_NAME_ALIASES = {
    "PCMU": "G711-PLC",
    "PCMA": "G711-PLC",
    "G711": "G711-PLC",
    "G711U": "G711-PLC",
    "G711A": "G711-PLC",
    "G729": "G729A",
    "G729A": "G729A",
    "G723": "G723.1",
    "G7231": "G723.1",
    "GSM": "GSM-FR",
    "OPUS": "OPUS",
    "AMR-WB": "AMR-WB",
    "AMRWB": "AMR-WB",
}
_STATIC_PT_CODEC = {0: "G711-PLC", 8: "G711-PLC", 18: "G729A", 4: "G723.1", 3: "GSM-FR"}


def codec_row(codec: str | None, payload_type: int | None) -> CodecImpairment | None:
    """The table row for a codec name (SDP encoding name or ours) or a static PT."""
    if codec:
        key = codec.upper().replace(".", "").replace("_", "-").split("/")[0]
        if key in CODECS:
            return CODECS[key]
        if key in _NAME_ALIASES:
            return CODECS[_NAME_ALIASES[key]]
    if payload_type is not None and payload_type in _STATIC_PT_CODEC:
        return CODECS[_STATIC_PT_CODEC[payload_type]]
    return None


@dataclass(frozen=True)
class EModelInputs:
    """Every input and intermediate term of one E-model evaluation."""

    codec: str
    codec_source: str
    ie: float
    bpl: float
    ppl_percent: float
    burst_r: float
    ta_ms: float | None
    ro: float
    is_: float
    id_: float
    ie_eff: float
    advantage: float


@lru_cache(maxsize=256)  # pure functions of the defaults and the delay
def _noise_and_ro() -> tuple[float, float, float]:
    """No (dBm0p), OLR and Ro from the default parameters (G.107 §7.2)."""
    olr = SLR + RLR
    nfo = NFOR + RLR
    pre = PR + 10 * math.log10(1 + 10 ** ((10 - LSTR) / 10))
    nor = RLR - 121 + pre + 0.008 * (pre - 35) ** 2
    nos = PS - SLR - DS - 100 + 0.004 * (PS - olr - DS - 14) ** 2
    no = 10 * math.log10(10 ** (NC / 10) + 10 ** (nos / 10) + 10 ** (nor / 10) + 10 ** (nfo / 10))
    ro = 15 - 1.5 * (SLR + no)
    return no, olr, ro


@lru_cache(maxsize=256)  # pure functions of the defaults and the delay
def _simultaneous_impairment(ro: float, no: float, olr: float, t_ms: float) -> float:
    """Is = Iolr + Ist + Iq (G.107 §7.3)."""
    xolr = olr + 0.2 * (64 + no - RLR)
    iolr = 20 * ((1 + (xolr / 8) ** 8) ** (1 / 8) - xolr / 8)
    stmro = -10 * math.log10(10 ** (-STMR / 10) + math.exp(-t_ms / 4) * 10 ** (-TELR / 10))
    ist = (
        12 * (1 + ((stmro - 13) / 6) ** 8) ** (1 / 8)
        - 28 * (1 + ((stmro + 1) / 19.4) ** 35) ** (1 / 35)
        - 13 * (1 + ((stmro - 3) / 33) ** 13) ** (1 / 13)
        + 29
    )
    q = 37 - 15 * math.log10(QDU)
    g = 1.07 + 0.258 * q + 0.0602 * q**2
    y = (ro - 100) / 15 + 46 / 8.4 - g / 9
    z = 46 / 30 - g / 40
    iq = 15 * math.log10(1 + 10**y + 10**z)
    return iolr + ist + iq


@lru_cache(maxsize=256)  # pure functions of the defaults and the delay
def _delay_impairment(ro: float, no: float, t_ms: float, tr_ms: float, ta_ms: float) -> float:
    """Id = Idte + Idle + Idd (G.107 §7.4)."""
    terv = TELR - 40 * math.log10((1 + t_ms / 10) / (1 + t_ms / 150)) + 6 * math.exp(-0.3 * t_ms**2)
    roe = -1.5 * (no - RLR)
    re = 80 + 2.5 * (terv - 14)
    idte = ((roe - re) / 2 + math.sqrt((roe - re) ** 2 / 4 + 100) - 1) * (1 - math.exp(-t_ms))
    rle = 10.5 * (WEPL + 7) * (tr_ms + 1) ** (-0.25)
    idle = (ro - rle) / 2 + math.sqrt((ro - rle) ** 2 / 4 + 169)
    idd = 0.0
    if ta_ms > DELAY_FREE_MS:
        x = math.log10(ta_ms / DELAY_FREE_MS) / math.log10(2)
        idd = 25 * ((1 + x**6) ** (1 / 6) - 3 * (1 + (x / 3) ** 6) ** (1 / 6) + 2)
    return idte + idle + idd


def r_factor(
    codec: CodecImpairment, ppl_percent: float, burst_r: float = 1.0, ta_ms: float | None = None
) -> tuple[float, EModelInputs]:
    """Transmission rating R (G.107 §7.1, formula 7-1) and the inputs used.

    Parameters
    ----------
    codec : CodecImpairment
        Ie and Bpl of the codec (G.113 Appendix I).
    ppl_percent : float
        Packet-loss probability in percent (network loss plus late discards).
    burst_r : float
        Burst ratio (G.107 §3.9), 1 for random loss.
    ta_ms : float, optional
        Mean one-way delay; None when unknown (no delay impairment but the
        echo terms at T = 0).

    Examples
    --------
    >>> round(r_factor(CODECS["G711-PLC"], 0.0)[0], 1)
    93.2
    """
    no, olr, ro = _noise_and_ro()
    t = 0.0 if ta_ms is None else float(ta_ms)
    is_ = _simultaneous_impairment(ro, no, olr, t)
    id_ = _delay_impairment(ro, no, t, 2 * t, t)
    ppl = max(0.0, float(ppl_percent))
    br = max(1.0, float(burst_r))
    ie_eff = codec.ie + (95 - codec.ie) * ppl / (ppl / br + codec.bpl)  # G.107 formula (7-29)
    r = ro - is_ - id_ - ie_eff + ADVANTAGE
    inputs = EModelInputs(
        codec=codec.name,
        codec_source=codec.source,
        ie=codec.ie,
        bpl=codec.bpl,
        ppl_percent=ppl,
        burst_r=br,
        ta_ms=ta_ms,
        ro=ro,
        is_=is_,
        id_=id_,
        ie_eff=ie_eff,
        advantage=ADVANTAGE,
    )
    return r, inputs


def mos_from_r(r):
    """Estimated MOS (conversational, CQE) from R, G.107 Annex B formula (B-4).

    Accepts a float (returns a float) or an array (returns an array).

    Examples
    --------
    >>> mos_from_r(0.0), mos_from_r(100.0), round(mos_from_r(93.2), 2)
    (1.0, 4.5, 4.41)
    """
    x = np.asarray(r, np.float64)
    m = np.where(
        x <= 0, 1.0, np.where(x >= 100, 4.5, 1 + 0.035 * x + x * (x - 60) * (100 - x) * 7e-6)
    )
    return float(m) if m.ndim == 0 else m


def mos_for_loss(
    codec: CodecImpairment,
    ppl_percent: np.ndarray,
    burst_r: float = 1.0,
    ta_ms: float | None = None,
) -> np.ndarray:
    """MOS for many loss values with everything else fixed (vectorised formula 7-29)."""
    r_clean, _ = r_factor(codec, 0.0, burst_r, ta_ms)
    ppl = np.maximum(np.asarray(ppl_percent, np.float64), 0.0)
    br = max(1.0, float(burst_r))
    ie_eff = codec.ie + (95 - codec.ie) * ppl / (ppl / br + codec.bpl)
    return np.asarray(mos_from_r(r_clean + codec.ie - ie_eff))
