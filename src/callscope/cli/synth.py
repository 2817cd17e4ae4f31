"""``callscope synth``: write a labelled simulated capture (or a whole corpus)."""

from __future__ import annotations

import click

from callscope.cli.common import FiniteFloat
from callscope.errors import CallscopeError
from callscope.synth.both_ends import write_two_point
from callscope.synth.call import VANTAGES, simulate, simulate_many_streams
from callscope.synth.codecs import CODECS, DEFAULT_PTIME_MS
from callscope.synth.corpus import generate_corpus
from callscope.synth.output import write_capture
from callscope.synth.scenarios import SCENARIOS

CORPUS = "corpus"


def _parse_params(pairs: tuple[str, ...]) -> dict[str, str]:
    params = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise CallscopeError(f"--param wants key=value, not {pair!r}")
        params[key.strip()] = value.strip()
    return params


@click.command(
    epilog=(
        "Scenarios: " + ", ".join(SCENARIOS) + ". "
        "Use SCENARIO 'corpus' with -o DIR and --per-pattern N to write N captures of every "
        "pattern (PATTERN-NNN.pcap + .truth.json, and corpus.json) for `callscope evaluate`. "
        "Examples: callscope synth policing -o p.pcap --param rate_Bps=4000; "
        "callscope synth corpus -o corpus/ --per-pattern 5."
    )
)
@click.argument("scenario", type=click.Choice([*SCENARIOS, CORPUS]), metavar="SCENARIO")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=True),
              help="Capture to write (.pcap; its NAME.truth.json goes beside it), or the corpus directory.")
@click.option("--seed", default=0, show_default=True, help="Seed: same seed, same capture.")
@click.option("--duration", type=FiniteFloat(min=0.0, min_open=True, max=86400.0), default=30.0, show_default=True, help="Call length, seconds.")
@click.option("--codec", type=click.Choice(sorted(CODECS)), default="pcmu", show_default=True)
@click.option("--opaque", is_flag=True, help="Encrypted header-less media (no RTP, SIP or RTCP).")
@click.option("--param", "params", multiple=True, metavar="KEY=VALUE",
              help="Set a scenario parameter instead of drawing it (repeatable).")
@click.option("--vantage", type=click.Choice(VANTAGES), default=None,
              help="Where the capture is taken: each packet at its receiver (default; setup-blocked: a), "
                   "or on endpoint a or b (own packets when sent).")
@click.option("--ptime", type=click.IntRange(1, 1000), default=DEFAULT_PTIME_MS, show_default=True, help="Packetization interval, ms.")
@click.option("--streams", type=click.IntRange(min=1), default=None,
              help="Instead of one call: this many concurrent one-way streams (for big captures).")
@click.option("--background-loss", type=FiniteFloat(0.0, 1.0), default=0.0, show_default=True,
              help="Independent loss of the path under the scenario (corpus: drawn from 0-0.3 %).")
@click.option("--two-point", is_flag=True,
              help="Write both ends' captures, NAME.a.pcap (A, behind a NAT) and NAME.b.pcap (B, its clock "
                   "offset by seconds and drifting tens of ppm), each with a sidecar.")
@click.option("--ns", "nanosecond", is_flag=True, help="Nanosecond timestamps in the pcap.")
@click.option("--per-pattern", type=click.IntRange(min=1), default=3, show_default=True,
              help="With SCENARIO 'corpus': captures per pattern.")
def synth(
    scenario: str,
    output: str,
    seed: int,
    duration: float,
    codec: str,
    opaque: bool,
    params: tuple[str, ...],
    vantage: str | None,
    ptime: int,
    streams: int | None,
    background_loss: float,
    two_point: bool,
    nanosecond: bool,
    per_pattern: int,
) -> None:
    """Write a simulated call degraded by SCENARIO, with a ground-truth sidecar.

    The impairment is modelled (a token bucket, a FIFO queue, a Gilbert-Elliott
    chain, ...) with parameters drawn from the seed unless set with --param;
    the sidecar OUTPUT-without-extension.truth.json records the label, every
    true parameter, which direction was impaired and when.
    """
    if scenario == CORPUS:
        paths = generate_corpus(output, per_pattern, seed=seed, duration=duration, opaque=opaque)
        click.echo(f"wrote {len(paths)} captures of {len(SCENARIOS)} patterns to {output}")
        return
    kwargs = _parse_params(params)
    if streams is not None:
        packets = int(duration * 1000 / ptime)
        call = simulate_many_streams(streams, packets, seed=seed, scenario=scenario, codec=codec,
                                     opaque=opaque, ptime_ms=ptime, background_loss=background_loss,
                                     **kwargs)
    else:
        call = simulate(scenario, seed=seed, duration=duration, codec=codec, opaque=opaque,
                        vantage=vantage, ptime_ms=ptime, background_loss=background_loss, **kwargs)
    if two_point:
        a, b = write_two_point(call, output, nanosecond=nanosecond)
        click.echo(f"wrote {a} and {b} (with .truth.json sidecars)")
        click.echo(f"  {call.label}: {call.scenario}")
        return
    sidecar = write_capture(call, output, nanosecond=nanosecond)
    captured = len(call.captured())
    lost = int(call.lost.sum())
    click.echo(f"wrote {output} ({captured} packets; {lost} of {len(call)} sent were lost) and {sidecar}")
    click.echo(f"  {call.label}: {call.scenario}")
