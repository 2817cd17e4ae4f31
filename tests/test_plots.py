"""Plots of a Report: the figures' axes, series, shaded spans and the files written."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

from callscope.analysis import analyze
from callscope.cli import cli
from callscope.report import plots
from callscope.synth import simulate, write_capture
from conftest import FIXTURES

MIN_FILE_BYTES = 5_000


@pytest.fixture(scope="module")
def outage(tmp_path_factory):
    """A two-way PCMU call whose b->a direction suffers periodic outages."""
    path = tmp_path_factory.mktemp("plots") / "outage.pcap"
    write_capture(simulate("intermittent-outage", seed=2, duration=20, codec="pcmu"), path)
    return analyze(path)


def _impaired(report):
    return next(f.stream_id for f in report.diagnosis.findings if f.pattern == "intermittent-outage")


def _spans(ax):
    return [p for p in ax.patches if p.get_label() == "_span"]


def test_timeline_has_six_labelled_panels_on_one_time_axis(outage):
    sid = _impaired(outage)
    fig = plots.timeline_figure(outage, sid)
    axes = fig.axes
    assert len(axes) == 6
    labels = [ax.get_ylabel() for ax in axes]
    for label, unit in zip(labels, ("(ms)", "(ms)", "(ms)", "(%)", "(kbit/s)", "MOS"), strict=True):
        assert unit in label
    assert all(ax.get_shared_x_axes().joined(axes[0], ax) for ax in axes)
    assert axes[-1].get_xlabel() == "time since capture start (s)"
    assert sid in fig._suptitle.get_text() and "PCMU" in fig._suptitle.get_text()

    m = outage.metrics[sid]
    n = len(m.per_packet.time_s)
    for ax in axes[:3]:
        assert len(ax.lines) == 1
        x = np.asarray(ax.lines[0].get_xdata(), float)
        assert np.count_nonzero(np.isfinite(x)) == n
        # the line is broken across each outage instead of ramping over it
        assert np.count_nonzero(np.isnan(x)) >= 3
    # bitrate and MOS: one step per window plus the closing edge
    for ax in axes[4:]:
        assert len(ax.lines[0].get_xdata()) == m.timeline.start_s.size + 1
    # every lost packet is a tick on the loss panel
    ticks = axes[3].collections[0]
    assert len(ticks.get_segments()) == m.missing


def test_timeline_shades_every_finding_span_on_every_panel(outage):
    sid = _impaired(outage)
    fig = plots.timeline_figure(outage, sid)
    findings = plots.findings_for(outage, sid)
    n_spans = sum(len(f.spans) for f in findings)
    assert n_spans >= 3
    for ax in fig.axes:
        assert len(_spans(ax)) == n_spans
    labels = {t.get_text() for t in fig.axes[0].texts}
    assert {f.pattern for f in findings if f.spans} <= labels
    outage_finding = next(f for f in findings if f.pattern == "intermittent-outage")
    x0 = sorted(p.get_x() for p in _spans(fig.axes[0]))
    for start, _ in outage_finding.spans:
        assert min(abs(np.array(x0) - start)) < 1e-9


def test_loss_structure_overlays_the_gilbert_elliott_fit(outage):
    sid = _impaired(outage)
    m = outage.metrics[sid]
    fig = plots.loss_structure_figure(outage, sid)
    (ax,) = fig.axes
    bins = min(max(len(m.loss_runs), plots.MIN_RUN_BINS), plots.MAX_RUN_BIN)
    assert len(ax.patches) == bins
    assert sum(p.get_height() for p in ax.patches) == sum(m.loss_runs)
    fit, bernoulli = ax.lines
    assert len(fit.get_xdata()) == bins
    assert "Gilbert-Elliott" in fit.get_label()
    assert ax.get_xlabel().startswith("consecutive packets lost")


def test_gilbert_elliott_run_lengths_are_geometric_for_a_simple_gilbert_chain():
    # Loss only in the bad state (h_G = 0, h_B = 1): runs are geometric with r.
    p, r = 0.05, 0.4
    got = plots.gilbert_elliott_runs(p, r, 0.0, 1.0, 6)
    assert np.allclose(got, r * (1 - r) ** np.arange(6))


def test_distributions_put_both_directions_of_a_call_side_by_side(outage):
    (call,) = [c for c in outage.inventory.calls if len(c.stream_ids) == 2]
    fig = plots.distributions_figure(outage, call.stream_ids)
    assert len(fig.axes) == 3
    for ax in fig.axes:
        assert len(ax.lines) == 2
        assert "(ms)" in ax.get_xlabel()
    s0 = call.stream_ids[0]
    delta = outage.metrics[s0].per_packet.delta_ms
    assert len(fig.axes[0].lines[0].get_xdata()) == np.count_nonzero(np.isfinite(delta))


@pytest.mark.parametrize(
    ("span", "most_ticks", "label"),
    [(10.0, 10, "5 s"), (600.0, 10, "05:00"), (7200.0, 10, "1:15:00")],
)
def test_time_axis_ticks_suit_short_and_long_calls(span, most_ticks, label):
    step = plots.time_step(span)
    assert span / step <= most_ticks
    assert span / step >= 3
    tick = {10.0: 5, 600.0: 300, 7200.0: 4500}[span]
    assert plots.format_clock(tick, span) == label


def test_spectrogram_of_decoded_audio_marks_concealed_stretches(outage):
    from callscope.capture.reader import read_capture
    from callscope.report.audio import render_stream

    sid = _impaired(outage)
    stream = outage.inventory.stream(sid)
    rendering = render_stream(read_capture(outage.path), stream)
    fig = plots.spectrogram_figure(rendering, stream, outage.metrics[sid].first_time_s)
    ax = fig.axes[0]
    assert ax.get_ylabel() == "frequency (kHz)"
    assert len(ax.collections) == 1  # the mesh
    gaps = plots._runs(rendering.concealed)
    assert len(gaps) >= 3 and len(ax.patches) == len(gaps)


@pytest.mark.slow
def test_save_plots_writes_every_figure(outage, tmp_path):
    written = plots.save_plots(outage, tmp_path / "png")
    kinds = sorted(f.kind for f in written)
    lossy = sum(m.missing > 0 for m in outage.metrics.values())
    assert lossy >= 1
    assert kinds == ["distributions", *["loss"] * lossy, "spectrogram", "spectrogram", "timeline", "timeline"]
    for f in written:
        assert f.path.exists() and f.path.stat().st_size > MIN_FILE_BYTES
        assert f.path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_command_writes_svg_for_one_stream(tmp_path):
    res = CliRunner().invoke(cli, ["plot", str(FIXTURES / "rtpproxy__lost.a.pcap"), "-o", str(tmp_path),
                                   "--stream", "s1", "--format", "svg"])
    assert res.exit_code == 0, res.output
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["s1-distributions.svg", "s1-loss.svg", "s1-spectrogram.svg", "s1-timeline.svg"]  # G.729 decodes
    assert all((tmp_path / n).stat().st_size > MIN_FILE_BYTES for n in names)
    assert (tmp_path / "s1-timeline.svg").read_text().lstrip().startswith("<?xml")

    res = CliRunner().invoke(cli, ["plot", str(FIXTURES / "rtpproxy__lost.a.pcap"), "-o", str(tmp_path),
                                   "--stream", "s9"], standalone_mode=False)
    assert "no stream s9" in str(res.exception)


def test_analyze_plot_option_writes_pngs_beside_the_text_report(tmp_path):
    res = CliRunner().invoke(cli, ["analyze", str(FIXTURES / "rtpproxy__lost.a.pcap"), "--plot", str(tmp_path)])
    assert res.exit_code == 0, res.output
    assert "bursty-loss" in res.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s1-distributions.png", "s1-loss.png",
                                                           "s1-spectrogram.png", "s1-timeline.png"]


@pytest.mark.parametrize("seconds", [5, 60, 1800])
def test_spectrogram_columns_stay_bounded_for_long_calls(seconds):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(seconds * 8000).astype(np.float32)
    with np.errstate(all="raise"):
        f, t, sxx = plots.spectrogram_power(x, 8000)
    assert sxx.shape == (f.size, t.size) == (plots.SPECTROGRAM_NFFT // 2 + 1, t.size)
    assert t.size <= plots.SPECTROGRAM_MAX_COLUMNS
    assert t[-1] <= seconds
    # white noise of unit variance: one-sided PSD 2 / fs per Hz away from DC and Nyquist
    assert np.mean(sxx[5:-5]) == pytest.approx(2 / 8000, rel=0.05)


def test_long_calls_are_drawn_as_envelopes_and_merged_windows():
    from callscope.metrics import Timeline

    n_windows = 7200
    lost = np.zeros(n_windows, np.int64)
    lost[::10] = 25  # one window in ten loses half its packets
    expected = np.full(n_windows, 50, np.int64)
    tl = Timeline(window_s=1.0, start_s=np.arange(n_windows, dtype=float), packets=expected - lost,
                  expected=expected, lost=lost, loss_fraction=lost / expected,
                  jitter_ms=np.zeros(n_windows), delay_ms=np.zeros(n_windows),
                  bitrate_kbps=np.full(n_windows, 64.0), mos=np.full(n_windows, 4.0))
    start, width, loss, bitrate, mos = plots._coarse_windows(tl)
    assert start.size <= plots.MAX_WINDOWS and width == 12.0
    assert loss.mean() == pytest.approx(100 * lost.sum() / expected.sum())
    assert np.allclose(bitrate, 64.0) and np.allclose(mos, 4.0)

    fig = plots._figure(6, 3)
    ax = fig.subplots()
    t = np.arange(360_000) * 0.02
    y = np.where(np.arange(t.size) % 100 == 0, 500.0, 20.0)
    plots._packet_line(ax, t, y, "#1f77b4")
    (median,) = ax.lines
    assert len(median.get_xdata()) == plots.ENVELOPE_BINS
    assert np.allclose(median.get_ydata(), 20.0)
    band = ax.collections[0].get_paths()[0].vertices[:, 1]
    assert band.max() == 500.0 and band.min() == 20.0


def test_loading_the_commands_does_not_import_matplotlib():
    import subprocess
    import sys

    code = ("import sys, callscope.cli.plot, callscope.cli.report, callscope.cli.audio, callscope.cli.analyze; "
            "print('matplotlib' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
