"""``callscope lab``: labelled calls degraded by a real Linux network stack."""

from __future__ import annotations

import json
from pathlib import Path

import click

from callscope.errors import CallscopeError


@click.group("lab")
def lab() -> None:
    """Run calls through network namespaces impaired by nftables and tc (Linux, root).

    Every scenario writes NAME.pcap (the single-point capture at the receiver
    of the impaired direction), NAME.a.pcap / NAME.b.pcap (both ends, for
    `callscope compare`) and NAME.truth.json (label, accept, parameters, exact
    per-packet truth verified against the kernel's counters), which
    `callscope evaluate DIR` scores.
    """


@lab.command("list")
@click.option("--seed", default=1, show_default=True, help="Seed the parameters are drawn with.")
def list_(seed: int) -> None:
    """The scenario catalogue: name, label, media seconds, description."""
    from callscope.lab.catalogue import catalogue

    for s in catalogue(seed):
        click.echo(f"{s.name:44s} {s.label:20s} {s.media.duration_s:5.1f}s  {s.description}")


@lab.command("run")
@click.argument("scenario")
@click.option("-o", "--output", "out", required=True, type=click.Path(file_okay=False), help="Output directory.")
@click.option("--seed", default=1, show_default=True, help="Seed the catalogue's parameters are drawn with.")
def run(scenario: str, out: str, seed: int) -> None:
    """Run one catalogue SCENARIO (see `callscope lab list`)."""
    from callscope.lab.catalogue import find
    from callscope.lab.run import check_host, run_scenario

    check_host()
    try:
        s = find(scenario, seed)
    except KeyError:
        raise CallscopeError(f"no lab scenario {scenario!r}: `callscope lab list` shows them") from None
    doc = run_scenario(s, out, log=lambda m: click.echo(m, err=True))
    _summary(doc)
    if not doc["verification"]["ok"]:
        raise SystemExit(1)


@lab.command("corpus")
@click.option("-o", "--output", "out", required=True, type=click.Path(file_okay=False), help="Output directory.")
@click.option("--only", default="", help="Comma-separated patterns (or 'negatives') to run.")
@click.option("--seed", default=1, show_default=True, help="Seed the parameters are drawn with.")
@click.option("--jobs", default=1, type=click.IntRange(1, 1), show_default=True,
              help="Scenarios run one at a time: timing fidelity needs the CPU.")
def corpus(out: str, only: str, seed: int, jobs: int) -> None:
    """Run the whole catalogue (or --only some patterns) into OUTPUT; exit 1 if a truth failed verification."""
    from callscope.lab.catalogue import catalogue
    from callscope.lab.run import check_host, corpus_index, run_corpus

    check_host()
    wanted = tuple(p.strip() for p in only.split(",") if p.strip())
    scenarios = catalogue(seed, wanted)
    if not scenarios:
        raise CallscopeError(f"--only {only!r} selects no scenario: `callscope lab list` shows the labels")
    summary = run_corpus(scenarios, out, log=lambda m: click.echo(m, err=True))
    summary.update(seed=seed, only=list(wanted))
    Path(out, "corpus.json").write_text(json.dumps(summary, indent=1))
    Path(out, "INDEX.md").write_text(corpus_index(out))
    click.echo(f"{len(scenarios)} scenarios in {summary['seconds'] / 60:.1f} min: {summary['verified']} verified, "
               f"{summary['failed']} failed -> {out}")
    if summary["verified"] != len(scenarios):
        raise SystemExit(1)


@lab.command("relabel")
@click.argument("dirs", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False))
def relabel(dirs: tuple[str, ...]) -> None:
    """Recompute each lab truth's ``readings`` and ``accept`` in DIRS (and their INDEX.md).

    For corpora written before the readings existed, or after the policy in
    callscope.lab.readings changed. The label, the captures and every count stay.
    """
    from callscope.lab.readings import with_readings
    from callscope.lab.run import corpus_index

    for d in dirs:
        changed = 0
        for path in sorted(Path(d).glob("*.truth.json")):
            doc = json.loads(path.read_text())
            if doc.get("generator") != "callscope lab":
                continue
            new = with_readings(doc)
            if new != doc:
                path.write_text(json.dumps(new, indent=1))
                changed += 1
                if new["accept"] != doc["accept"]:
                    click.echo(f"{path.name}: accept {', '.join(doc['accept'])} -> {', '.join(new['accept'])}")
        Path(d, "INDEX.md").write_text(corpus_index(d))
        click.echo(f"{d}: {changed} truth files updated")


@lab.command("clean")
def clean() -> None:
    """Remove what a killed lab run left behind (its cs-lab-* namespaces and their processes)."""
    from callscope.lab.run import check_host, lab_lock
    from callscope.lab.run import clean as do_clean

    check_host()
    with lab_lock():
        removed = do_clean()
    click.echo(f"removed {', '.join(removed)}" if removed else "nothing to clean")


def _summary(doc: dict) -> None:
    v = doc["verification"]
    click.echo(f"{doc['scenario']}: label {doc['label']} (accept {', '.join(doc['accept'])})")
    for d, x in v["directions"].items():
        click.echo(f"  {d}: dropped {x['truth_dropped']} (nft {x['nft_dropped']}, qdisc {x['qdisc_dropped']} "
                   f"of which cross traffic {x['cross_traffic_dropped_at_qdisc']}) "
                   f"{'== kernel counters' if x['truth_equals_kernel'] else '!= kernel counters'}")
    click.echo(f"  verification: {'ok' if v['ok'] else 'FAILED'}")
