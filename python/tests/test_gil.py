"""The GIL is released during long work: a pure-Python thread keeps running meanwhile."""
import threading
import time

import numpy as np

import gmmdiff

# A thread that spins in Python while the main thread is inside gmmdiff must do at least this
# fraction of what it does while the main thread sleeps. Held throughout a call, the GIL would let
# it run only between calls (one 5 ms switch interval per call: under 5% for calls of 0.1 s or
# more); released, it competes only for the CPU with the sampler's threads (about 0.6 measured
# on 2 cores).
MIN_FRACTION = 0.1


# work() is repeated until this many seconds have passed, so that the measure is long enough to
# tell on any machine (one call may take 0.1 s on a fast one).
MIN_SECONDS = 0.5


def spin_rate_during(work):
    """Iterations per second of a spinning Python thread while work() runs (repeated for at least
    MIN_SECONDS), and the seconds it ran."""
    count = [0]
    stop = threading.Event()

    def spin():
        while not stop.is_set():
            count[0] += 1

    th = threading.Thread(target=spin)
    th.start()
    t0 = time.monotonic()
    try:
        while True:
            work()
            if time.monotonic() - t0 >= MIN_SECONDS:
                break
    finally:
        dt = time.monotonic() - t0
        stop.set()
        th.join()
    return count[0] / dt, dt


def test_sample_releases_the_gil():
    mix = gmmdiff.Mixture.preset("random-sphere", d=16, K=8, radius=3, seed=1)
    free, _ = spin_rate_during(lambda: time.sleep(0.1))
    busy, dt = spin_rate_during(lambda: gmmdiff.sample(mix, n=100_000, T=300))
    assert busy > MIN_FRACTION * free, f"spin rate {busy:.3g}/s during the sample, {free:.3g}/s idle"


def test_tv_and_sample_chunks_release_the_gil():
    mix = gmmdiff.Mixture.preset("random-sphere", d=16, K=8, radius=3, seed=1)
    y = np.asfortranarray(gmmdiff.sample(mix, n=400_000, T=4))
    free, _ = spin_rate_during(lambda: time.sleep(0.1))
    busy, dt = spin_rate_during(lambda: gmmdiff.tv(y, mix, stats="means,random:16,radial", bootstrap=20))
    assert busy > MIN_FRACTION * free, f"tv: spin rate {busy:.3g}/s ({dt:.2f} s), {free:.3g}/s idle"
    busy, dt = spin_rate_during(lambda: sum(c.shape[0] for c in gmmdiff.sample_chunks(mix, n=100_000, T=300)))
    assert busy > MIN_FRACTION * free, f"sample_chunks: spin rate {busy:.3g}/s ({dt:.2f} s), {free:.3g}/s idle"


def test_bracket_releases_the_gil():
    mix = gmmdiff.Mixture.preset("two-point", d=4, radius=2, sd=0.5)
    free, _ = spin_rate_during(lambda: time.sleep(0.1))
    busy, dt = spin_rate_during(lambda: gmmdiff.bracket(mix, T=64, n=2048, M=16, n_lower=20_000))
    assert busy > MIN_FRACTION * free, f"bracket: spin rate {busy:.3g}/s ({dt:.2f} s), {free:.3g}/s idle"
