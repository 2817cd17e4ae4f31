"""callscope._numerics gives the numbers of the numpy / SciPy routines it stands in for.

Each routine is compared with its reference on random inputs (ties, flat
tops, signed zeros, non-finite values where the routine accepts them): for
equality where the stand-in is exact, within rounding where the module says
it is not.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from scipy.ndimage import median_filter, minimum_filter1d
from scipy.signal import find_peaks as scipy_find_peaks
from scipy.signal import lfilter

from callscope._numerics import recurrence
from callscope._numerics.filters import middle_pair_network, running_median, trailing_min
from callscope._numerics.lines import least_squares_slope, linspace, theil_sen_slope
from callscope._numerics.peaks import find_peaks, local_maxima
from callscope._numerics.quantile import median, median_sorted, percentile_sorted, percentiles
from callscope._numerics.recurrence import exponential_average, linear_recurrence


def _bits(x) -> bytes:
    return np.asarray(x, np.float64).tobytes()


# --- quantile: numpy.percentile / numpy.median -------------------------------------


@pytest.mark.parametrize(
    "make",
    [
        lambda rng, n: rng.normal(20.0, 3.0, n),
        lambda rng, n: np.round(rng.exponential(5.0, n), 1),
        lambda rng, n: rng.integers(0, 3, n).astype(np.float64),
        lambda rng, n: np.where(rng.random(n) < 0.5, -0.0, 0.0) + rng.integers(-1, 2, n),
    ],
    ids=["normal", "rounded", "few-values", "signed-zeros"],
)
def test_percentiles_and_median_equal_numpys_bit_for_bit(make):
    rng = np.random.default_rng(7)
    for n in (1, 2, 3, 4, 19, 20, 1000, 10001):
        x = make(rng, n)
        assert _bits(percentiles(x, (50, 95))) == _bits(np.percentile(x, [50, 95]))
        assert _bits(percentiles(x, (0, 5, 100))) == _bits(np.percentile(x, [0, 5, 100]))
        assert _bits(median(x)) == _bits(np.median(x))


def test_percentiles_of_non_finite_data_are_numpys():
    x = np.array([1.0, np.inf, 3.0, 2.0])
    with np.errstate(invalid="ignore"):
        assert _bits(percentiles(x, (50, 95))) == _bits(np.percentile(x, [50, 95]))
    x = np.array([1.0, np.nan, 3.0])
    assert np.isnan(percentiles(x, (50,))[0]) and np.isnan(median(x))


def test_percentile_and_median_of_a_sorted_copy_equal_numpys_bit_for_bit():
    rng = np.random.default_rng(5)
    qs = (0, 1, 2, 5, 25, 50, 75, 95, 98, 99, 100, 33.3, 12.5)
    for trial in range(400):
        n = int(rng.integers(1, 300))
        x = rng.normal(size=n) * 10.0 ** rng.integers(-4, 3)
        if trial % 3 == 0:
            x = np.round(x, 1)  # ties
        s = np.sort(x)
        for q in qs:
            assert percentile_sorted(s, q) == float(np.percentile(x, q)), (trial, q)
        assert median_sorted(s) == float(np.median(x)), trial


def test_median_of_a_sorted_copy_with_a_nan_is_nan_as_in_numpy():
    s = np.sort(np.array([1.0, np.nan, 2.0, 3.0]))
    assert np.isnan(percentile_sorted(s, 50)) and np.isnan(np.percentile([1.0, np.nan, 2.0, 3.0], 50))
    assert np.isnan(median_sorted(s))


# --- recurrence: scipy.signal.lfilter ----------------------------------------------


def _loop(u: np.ndarray, a: float, y0: float) -> np.ndarray:
    out, y = [], y0
    for v in u:
        y = a * y + v
        out.append(y)
    return np.array(out)


@pytest.mark.parametrize("a", [0.0, 0.5, 15 / 16, 0.998002])
@pytest.mark.parametrize("n", [1, 3, 1000, 30_000])
def test_recurrence_equals_lfilter_and_a_loop_over_every_sample(a, n):
    u = np.random.default_rng(n).normal(0, 50, n)
    got = linear_recurrence(u, a, initial=7.0)
    scale = np.abs(u).max()
    assert np.max(np.abs(got - _loop(u, a, 7.0))) < 1e-9 * scale
    want, _ = lfilter([1.0], [1.0, -a], u, zi=[a * 7.0])
    assert np.max(np.abs(got - want)) < 1e-12 * max(scale, 7.0) * n ** 0.5


@pytest.mark.parametrize("gain", [1 / 16, 0.5, 1.0, 1 - 0.998002])
def test_exponential_average_equals_lfilter(gain):
    x = np.abs(np.random.default_rng(3).normal(0, 20, 5000))
    want, _ = lfilter([gain], [1.0, gain - 1.0], x, zi=[(1.0 - gain) * 2.0])
    got = exponential_average(x, gain, initial=2.0)
    assert np.max(np.abs(got - want)) < 1e-12 * x.max()


def test_exponential_average_with_gain_one_sixteenth_is_the_rfc3550_jitter_estimate():
    d = np.array([0.0, 16.0, 16.0, 0.0, 32.0])
    j, expect = 0.0, []
    for x in d:  # RFC 3550 §6.4.1: J(i) = J(i-1) + (|D(i-1,i)| - J(i-1)) / 16
        j += (abs(x) - j) / 16
        expect.append(j)
    assert exponential_average(d, 1 / 16).tolist() == pytest.approx(expect, rel=1e-15)


def test_recurrence_carries_the_initial_state_across_short_blocks(monkeypatch):
    # blocks of 21 samples (0.9^-21 < 10): the carried state matters at every block
    monkeypatch.setattr(recurrence, "_MAX_GROWTH", 10.0)
    recurrence._powers.cache_clear()
    try:
        u = np.random.default_rng(0).normal(size=1000)
        got = recurrence.linear_recurrence(u, 0.9, initial=5.0)
    finally:
        recurrence._powers.cache_clear()
    assert np.max(np.abs(got - _loop(u, 0.9, 5.0))) < 1e-12


def test_recurrence_crosses_block_boundaries_exactly():
    # a = 15/16 gives blocks of a few thousand samples: 20 000 spans several
    u = np.zeros(20_000)
    u[0] = 16.0
    y = linear_recurrence(u, 15 / 16)
    assert y[0] == 16.0
    assert y[10_000] == pytest.approx(16.0 * (15 / 16) ** 10_000, rel=1e-9, abs=1e-300)
    assert y[5000] == pytest.approx(16.0 * (15 / 16) ** 5000, rel=1e-9)


def test_recurrence_of_one_element_blocks_is_the_recurrence_step_by_step():
    rng = np.random.default_rng(5)
    u = rng.normal(0.0, 1.0, 40)
    a = 1e-101  # a^-1 beyond the growth bound: blocks of one element
    want = []
    state = 0.5
    for x in u.tolist():
        state = x + state * a
        want.append(state)
    assert linear_recurrence(u, a, 0.5).tolist() == want


def test_recurrence_rejects_a_decay_that_would_grow():
    with pytest.raises(ValueError, match="decay factor"):
        linear_recurrence(np.ones(3), 1.0)
    with pytest.raises(ValueError, match="gain"):
        exponential_average(np.ones(3), 0.0)


# --- filters: scipy.ndimage.median_filter / minimum_filter1d -----------------------


def test_running_median_equals_scipy_median_filter():
    rng = np.random.default_rng(11)
    for trial in range(300):
        n = int(rng.integers(1, 400))
        x = np.round(np.cumsum(rng.normal(size=n)), 1)  # rounding makes ties
        k = 2 * int(rng.integers(0, 16)) + 1  # both the network (<= 21) and the partition
        assert np.array_equal(running_median(x, k), median_filter(x, size=k, mode="nearest")), trial


def test_running_median_by_network_equals_the_partition_of_every_window():
    rng = np.random.default_rng(3)
    for size in range(1, 27, 2):
        for n in (1, 2, size, 500):
            x = np.round(np.cumsum(rng.normal(size=n)), 1)
            half = size // 2
            padded = np.concatenate([np.full(half, x[0]), x, np.full(half, x[-1])])
            windows = np.lib.stride_tricks.sliding_window_view(padded, size)
            want = np.partition(windows, half, axis=1)[:, half]
            assert np.array_equal(running_median(x, size), want), (size, n)
    # Eleven samples (ten packets of 20 ms) is the window the detectors use:
    # fewer comparators for both middle values of ten than a full sort of ten.
    assert len(middle_pair_network(10)) < 10 * 9 // 2


def test_middle_pair_network_sorts_the_two_middle_values_into_place():
    rng = np.random.default_rng(2)
    for wires in range(2, 32, 2):
        for _ in range(200):
            v = rng.integers(0, 4, wires).tolist()
            for a, b, _, _ in middle_pair_network(wires):
                if v[a] > v[b]:
                    v[a], v[b] = v[b], v[a]
            h = wires // 2
            assert v[h - 1 : h + 1] == sorted(v)[h - 1 : h + 1]


def test_running_median_rejects_an_even_window():
    with pytest.raises(ValueError, match="odd"):
        running_median(np.ones(5), 4)


def test_trailing_min_equals_scipy_minimum_filter_over_the_window_ending_at_each_sample():
    rng = np.random.default_rng(6)
    for width in (1, 2, 3, 7, 64, 199, 200, 201, 256, 257, 5000):
        for n in (1, 5, 300, 1000):
            x = np.round(rng.normal(size=n), 1)
            want = minimum_filter1d(x, width, mode="constant", cval=np.inf, origin=(width - 1) // 2)
            assert np.array_equal(trailing_min(x, width), want), (width, n)
            assert trailing_min(x, width)[-1] == x[max(0, n - width) :].min()


# --- peaks: scipy.signal.find_peaks ------------------------------------------------


@pytest.mark.filterwarnings("ignore:some peaks have a prominence of 0")
def test_find_peaks_equals_scipy_find_peaks_with_prominence_and_window():
    rng = np.random.default_rng(11)
    for trial in range(300):
        n = int(rng.integers(1, 400))
        x = np.round(np.cumsum(rng.normal(size=n)), 1)  # rounding makes flat tops
        wlen = int(rng.integers(3, 120))
        prominence = float(rng.uniform(0.0, 2.0))
        index, props = scipy_find_peaks(x, prominence=prominence, wlen=wlen)
        got = find_peaks(x, prominence, wlen)
        assert got.index.tolist() == index.tolist(), trial
        assert got.left_base.tolist() == props["left_bases"].tolist(), trial
        assert got.right_base.tolist() == props["right_bases"].tolist(), trial
        assert np.allclose(got.prominence, props["prominences"], rtol=1e-12, atol=1e-12)


def test_local_maxima_equal_scipy_find_peaks_without_conditions():
    rng = np.random.default_rng(12)
    for trial in range(300):
        x = rng.integers(0, 5, int(rng.integers(0, 200))).astype(np.float64)  # many flat tops
        assert local_maxima(x).tolist() == scipy_find_peaks(x)[0].tolist(), trial


def test_a_flat_topped_peak_is_found_once_at_its_middle():
    x = np.array([0.0, 1.0, 3.0, 3.0, 3.0, 3.0, 1.0, 0.0, 2.0, 0.0])
    got = find_peaks(x, prominence=1.5, wlen=11)
    assert got.index.tolist() == [3, 8]
    assert got.prominence.tolist() == [3.0, 2.0]


# --- lines: numpy.linspace / scipy.stats -------------------------------------------


def test_linspace_equals_numpys_bit_for_bit():
    rng = np.random.default_rng(8)
    for _ in range(500):
        start = float(rng.uniform(-1e4, 1e4))
        stop = start + float(rng.uniform(1e-6, 1e3))
        num = int(rng.integers(2, 40))
        assert _bits(linspace(start, stop, num)) == _bits(np.linspace(start, stop, num))


def test_theil_sen_slope_equals_scipys_theilslopes_bit_for_bit():
    rng = np.random.default_rng(9)
    for trial in range(300):
        n = int(rng.integers(2, 40))
        x = np.round(rng.uniform(0.0, 10.0, n), 1)  # repeated x: pairs with dx = 0 are skipped
        y = rng.normal(size=n)
        if np.ptp(x) == 0:
            assert theil_sen_slope(x, y) is None
            continue
        assert theil_sen_slope(x, y) == stats.theilslopes(y, x)[0], trial


def test_theil_sen_slope_is_the_median_pairwise_slope_so_one_outlier_does_not_tilt_it():
    x = np.array([0.0, 1.0, 2.0, 3.0, 4.0])
    y = np.array([0.0, 1.0, 2.0, 3.0, 100.0])
    assert theil_sen_slope(x, y) == pytest.approx(1.0)


def test_least_squares_slope_equals_scipys_linregress():
    rng = np.random.default_rng(10)
    for _ in range(300):
        n = int(rng.integers(3, 2000))
        x = np.sort(rng.uniform(0.0, 60.0, n))
        y = 0.3 * x + rng.normal(0.0, 5.0, n)
        assert least_squares_slope(x, y) == pytest.approx(stats.linregress(x, y).slope, rel=1e-10, abs=1e-12)
