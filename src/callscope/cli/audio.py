"""``callscope audio``: what the listener heard, losses included, as a WAV file."""

from __future__ import annotations

import click

from callscope.cli.common import decoder_option, one_line_warnings


@click.command()
@click.argument("capture", type=click.Path())
@click.option("--stream", "stream_id", required=True, metavar="ID",
              help="The stream to decode (ids as `callscope analyze` prints them).")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="WAV file to write.")
@click.option("--conceal", type=click.Choice(["silence", "repeat"]), default="silence", show_default=True,
              help="Fill lost and late packets with silence or with the last frame repeated.")
@click.option("--playout", type=click.Choice(["adaptive", "fixed", "none"]), default="adaptive",
              show_default=True,
              help="Playout buffer that drops late packets (as in `analyze`: jb_late_*); none plays all.")
@decoder_option
def audio(capture: str, stream_id: str, output: str, conceal: str, playout: str, decoder: str) -> None:
    """Decode one stream of CAPTURE to a 16-bit 8 kHz mono WAV, gaps included.

    Supported codecs: G.711 µ-law (PCMU, payload type 0) and A-law (PCMA,
    payload type 8) only. Opus, G.729 and other codecs need native decoders
    that callscope does not depend on; SRTP-encrypted payloads cannot be
    decoded at all. Gaps the sender made (silence suppression) stay silent;
    lost packets and packets the playout buffer dropped as late are filled
    as --conceal says, which is how policing's evenly spaced losses come to
    sound "metallic".
    """
    from callscope.analysis import analyze as run
    from callscope.capture import open_capture
    from callscope.cli.plot import check_stream_ids
    from callscope.report.audio import render_stream, write_wav

    with one_line_warnings():
        report = run(capture, decoder=decoder)
        check_stream_ids(report, (stream_id,))
        stream = report.inventory.stream(stream_id)
        pp = report.metrics[stream_id].per_packet
        late = {"adaptive": pp.late_adaptive, "fixed": pp.late_fixed, "none": None}[playout]
        rendering = render_stream(open_capture(capture, decoder), stream, conceal=conceal, late=late)
    write_wav(output, rendering)
    click.echo(
        f"{output}: {rendering.duration_s:.2f} s of {rendering.codec} at {rendering.sample_rate} Hz; "
        f"{rendering.concealed_s:.2f} s concealed with {conceal} "
        f"({rendering.packets_late} packets dropped as late), "
        f"{rendering.sender_silent.sum() / rendering.sample_rate:.2f} s of sender silence"
    )
