"""The GIL is released during long work: a pure-Python thread keeps running meanwhile."""
import threading
import time

import numpy as np

import gmmdiff

# A thread that spins in Python while the main thread is inside gmmdiff must do at least this
# fraction of what it does while the main thread sleeps. Held throughout, the GIL would let it do
# almost nothing (it would run only at the 0.1 s signal checks); released, it competes only for
# the CPU with the sampler's threads.
MIN_FRACTION = 0.05


def spin_rate_during(work):
    """Iterations per second of a spinning Python thread while work() runs, and work()'s seconds."""
    count = [0]
    stop = threading.Event()

    def spin():
        while not stop.is_set():
            count[0] += 1

    th = threading.Thread(target=spin)
    th.start()
    t0 = time.monotonic()
    try:
        work()
    finally:
        dt = time.monotonic() - t0
        stop.set()
        th.join()
    return count[0] / dt, dt


def test_sample_releases_the_gil():
    mix = gmmdiff.Mixture.preset("random-sphere", d=16, K=8, radius=3, seed=1)
    free, _ = spin_rate_during(lambda: time.sleep(0.5))
    busy, dt = spin_rate_during(lambda: gmmdiff.sample(mix, n=100_000, T=300))
    assert dt > 0.3, f"the sample took only {dt:.2f} s: too short to tell"
    assert busy > MIN_FRACTION * free, f"spin rate {busy:.3g}/s during the sample, {free:.3g}/s idle"


def test_tv_and_sample_chunks_release_the_gil():
    mix = gmmdiff.Mixture.preset("random-sphere", d=16, K=8, radius=3, seed=1)
    y = np.asfortranarray(gmmdiff.sample(mix, n=400_000, T=4))
    free, _ = spin_rate_during(lambda: time.sleep(0.5))
    busy, dt = spin_rate_during(lambda: gmmdiff.tv(y, mix, stats="means,random:16,radial", bootstrap=20))
    assert busy > MIN_FRACTION * free, f"tv: spin rate {busy:.3g}/s ({dt:.2f} s), {free:.3g}/s idle"
    busy, dt = spin_rate_during(lambda: sum(c.shape[0] for c in gmmdiff.sample_chunks(mix, n=100_000, T=300)))
    assert busy > MIN_FRACTION * free, f"sample_chunks: spin rate {busy:.3g}/s ({dt:.2f} s), {free:.3g}/s idle"


def test_bracket_releases_the_gil():
    mix = gmmdiff.Mixture.preset("two-point", d=4, radius=2, sd=0.5)
    free, _ = spin_rate_during(lambda: time.sleep(0.5))
    busy, dt = spin_rate_during(lambda: gmmdiff.bracket(mix, T=64, n=2048, M=16, n_lower=20_000))
    assert dt > 0.3, f"the bracket took only {dt:.2f} s: too short to tell"
    assert busy > MIN_FRACTION * free, f"bracket: spin rate {busy:.3g}/s ({dt:.2f} s), {free:.3g}/s idle"
