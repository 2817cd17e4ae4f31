"""``callscope audio``: what the listener heard, losses included, as WAV files."""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path

import click

from callscope.cli.common import decoder_option, echo_json, one_line_warnings


def srtp_options(fn):
    """``--srtp-key`` and ``--srtp-keys`` for every command that decodes audio."""
    fn = click.option("--srtp-keys", "srtp_keys_file", type=click.Path(dir_okay=False), default=None,
                      metavar="FILE",
                      help="SRTP keys, one SELECTOR=SUITE:BASE64KEY per line (selector: stream id, "
                           "SSRC 0x..., or SRC:PORT>DST:PORT).")(fn)
    fn = click.option("--srtp-key", "srtp_keys", multiple=True, metavar="STREAM=SUITE:BASE64KEY",
                      help="Master key||salt for an SRTP stream and its SRTCP (repeatable), e.g. "
                           "s1=AES_CM_128_HMAC_SHA1_80:<base64>; a sender using an MKI: <base64>|2^20|1:4 "
                           "(as in SDES). SDES keys (a=crypto) in clear-text SIP are used without asking.")(fn)
    return fn


def given_keys(srtp_keys: tuple[str, ...], srtp_keys_file: str | None) -> list:
    """The keys from the command line and the keys file (CallscopeError on a bad one)."""
    from callscope.media.srtp import load_keys_file, parse_key_spec

    keys = [parse_key_spec(k) for k in srtp_keys]
    if srtp_keys_file:
        keys += load_keys_file(srtp_keys_file)
    return keys


def _quiet_analysis(capture: str, decoder: str):
    """Analyze with numerical warnings of the detectors (e.g. a poorly conditioned
    fit on a short stream) kept off stderr: they say nothing about the audio."""
    import numpy as np

    from callscope.analysis import analyze as run

    # numpy < 2 has np.RankWarning; numpy 2 has only np.exceptions.RankWarning
    rank: type[Warning] = getattr(np, "RankWarning", None) or np.exceptions.RankWarning
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", rank)
        warnings.simplefilter("ignore", RuntimeWarning)
        return run(capture, decoder=decoder)


def _safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text)[:80] or "capture"


@click.command()
@click.argument("capture", type=click.Path())
@click.option("--stream", "stream_ids", multiple=True, metavar="ID",
              help="Decode only this stream (repeatable; ids as `callscope analyze` prints them). "
                   "Default: every RTP stream.")
@click.option("-o", "--output", required=True, type=click.Path(),
              help="WAV file to write (one output), or a directory for several.")
@click.option("--conceal", type=click.Choice(["silence", "repeat", "codec"]), default="silence",
              show_default=True,
              help="Fill lost and late packets with silence, the last frame repeated, or the codec's own "
                   "concealment (Opus; other codecs repeat).")
@click.option("--playout", type=click.Choice(["adaptive", "fixed", "none"]), default="adaptive",
              show_default=True,
              help="Playout buffer that drops late packets (as in `analyze`: jb_late_*); none plays all.")
@click.option("--both", is_flag=True,
              help="One stereo file per call: each direction on its own channel, aligned in time.")
@click.option("--json", "as_json", is_flag=True, help="Print what was written (and why not) as JSON.")
@srtp_options
@decoder_option
def audio(capture: str, stream_ids: tuple[str, ...], output: str, conceal: str, playout: str, both: bool,
          as_json: bool, srtp_keys: tuple[str, ...], srtp_keys_file: str | None, decoder: str) -> None:
    """Decode the streams of CAPTURE to 16-bit WAV, as the listener heard them.

    Decodes G.711 (PCMU, PCMA) built in, and with the [audio] extra (PyAV)
    Opus, G.722, G.729/A/B, G.723.1, GSM, iLBC, Speex, AMR and G.726.
    Packets go through the decoder in timestamp order at the codec's own
    rate (Opus 48 kHz, G.722 16 kHz). SRTP payloads are decrypted with keys
    from SDES a=crypto lines, --srtp-key or --srtp-keys; a stream whose
    packets fail authentication is reported, not played. Gaps the sender
    made (silence suppression, comfort noise) stay silent or noisy as sent;
    lost packets and packets the playout buffer dropped as late are filled
    as --conceal says, which is how policing's evenly spaced losses come to
    sound "metallic".
    """
    from callscope.capture import open_capture
    from callscope.cli.plot import check_stream_ids
    from callscope.errors import CallscopeError
    from callscope.report.audio import hear, heard_dict, write_stereo_wav, write_wav

    keys = given_keys(srtp_keys, srtp_keys_file)
    with one_line_warnings():
        report = _quiet_analysis(capture, decoder)
        wanted = check_stream_ids(report, stream_ids)
    streams = [report.inventory.stream(s) for s in wanted] if wanted else \
        [s for s in report.inventory.streams if s.kind == "rtp"]
    if not streams:
        raise CallscopeError(f"{capture}: no RTP stream to decode")
    groups: list[tuple[str, list]] = []
    if both:
        for call in report.inventory.calls:
            members = [s for s in streams if s.id in call.stream_ids]
            if members:
                groups.append((call.id, [report.inventory.stream(x) for x in call.stream_ids]))
        if not groups:
            raise CallscopeError(f"{capture}: --both needs a call with two directions; the streams asked for "
                                 "are in no call")
    else:
        groups = [(s.id, [s]) for s in streams]

    out = Path(output)
    single = len(groups) == 1 and not out.is_dir()
    if single:
        if out.parent != Path("") and not out.parent.is_dir():
            raise CallscopeError(f"{output}: directory {out.parent} does not exist")
    else:
        if (out.exists() and not out.is_dir()) or out.suffix.lower() == ".wav":
            raise CallscopeError(f"{output}: {len(groups)} files to write ({', '.join(g for g, _ in groups[:6])}"
                                 f"{'...' if len(groups) > 6 else ''}): give one --stream, or a directory as -o")
        if not out.parent.is_dir():
            raise CallscopeError(f"{output}: directory {out.parent} does not exist")
        out.mkdir(exist_ok=True)
    stem = _safe_name(Path(capture).name)
    cap = open_capture(capture, decoder)
    written, doc, failures = 0, [], []
    for name, members in groups:
        target = out if single else out / f"{stem}-{name}.wav"
        heard = [hear(report, cap, s, conceal=conceal, playout=playout, keys=keys) for s in members]
        entry = {"name": name, "path": None, "streams": [heard_dict(h) for h in heard]}
        doc.append(entry)
        for h in heard:
            if h.rendering is None:
                failures.append(h.error)
                continue
            if h.decryption is not None and h.decryption.finding():
                click.echo(f"callscope: {h.stream_id}: {h.decryption.finding()}", err=True)
            for note in h.rendering.notes:
                click.echo(f"callscope: {h.stream_id}: {note}", err=True)
        ok = [(s, h) for s, h in zip(members, heard, strict=True) if h.rendering is not None]
        if both:
            pair = _two_directions(ok)
            if pair is None:
                failures.append(f"call {name}: no two decodable directions; nothing written")
                continue
            (a, ha), (b, hb) = pair
            seconds = write_stereo_wav(target, ha.rendering, hb.rendering)
            if not as_json:
                click.echo(f"{target}: call {name}, {seconds:.2f} s stereo: left {_describe(a.id, ha.rendering)}; "
                           f"right {_describe(b.id, hb.rendering)}")
        elif ok:
            (s, h), = ok
            assert h.rendering is not None  # ok holds the rendered ones
            write_wav(target, h.rendering)
            if not as_json:
                click.echo(f"{target}: {_describe(s.id, h.rendering)}")
        else:
            continue
        entry["path"] = os.fspath(target)
        written += 1
    if as_json:
        echo_json({"capture": capture, "written": written, "outputs": doc})
    if written == 0 and len(failures) == 1:
        raise CallscopeError(failures[0])
    for line in failures:
        click.echo(f"callscope: {line}", err=True)
    if written == 0:
        raise CallscopeError(f"{capture}: no audio written ({len(failures)} streams could not be decoded, above)")


def _describe(sid: str, r) -> str:
    text = (f"{sid} {r.duration_s:.2f} s of {r.codec} at {r.sample_rate} Hz; "
            f"{r.concealed_s:.2f} s concealed with {r.conceal} ({r.packets_late} packets dropped as late), "
            f"{r.sender_silent.sum() / r.sample_rate:.2f} s of sender silence")
    if r.decryption is not None:
        d = r.decryption
        text += f"; SRTP {d.suite}: {d.decrypted} of {d.packets} packets decrypted"
    return text


def _two_directions(ok: list) -> tuple | None:
    """The first decodable stream and the first one flowing the other way."""
    for i, (a, ha) in enumerate(ok):
        for b, hb in ok[i + 1:]:
            if (b.src, b.src_port) == (a.dst, a.dst_port) or (b.dst, b.dst_port) == (a.src, a.src_port) \
                    or (b.src, b.dst) == (a.dst, a.src):
                return (a, ha), (b, hb)
    return None
