"""No reference or memory leak over 1000 calls: reference counts of the arguments, Python
allocations (tracemalloc) and the process's resident memory (results are freed by their capsules)."""
import gc
import os
import sys
import tracemalloc

import numpy as np
import pytest

import gmmdiff

CALLS = 1000
# 1000 leaked results of 64 KiB would be 64 MiB; allocator caches stay far below this.
MAX_RSS_GROWTH = 16 << 20
# Python objects allocated and kept over the 1000 calls (a leaked dict per call would be ~200 KB).
MAX_TRACED_GROWTH = 64 << 10


def rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def check_no_leak(call, *watched):
    for _ in range(50):  # warm-up: caches, the OpenMP pool, first-use allocations
        call()
    gc.collect()
    refs = [sys.getrefcount(w) for w in watched]
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        rss0 = rss_bytes()
        for _ in range(CALLS):
            call()
        gc.collect()
        rss1 = rss_bytes()
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    traced = sum(s.size_diff for s in after.compare_to(before, "filename"))
    assert [sys.getrefcount(w) for w in watched] == refs, "a reference leaked"
    assert traced < MAX_TRACED_GROWTH, f"{traced} bytes of Python objects kept over {CALLS} calls"
    assert rss1 - rss0 < MAX_RSS_GROWTH, f"resident memory grew by {(rss1 - rss0) >> 20} MiB over {CALLS} calls"


@pytest.fixture(scope="module")
def mix():
    return gmmdiff.Mixture.preset("random-sphere", d=16, K=4, radius=3, seed=1)


def test_sample(mix):
    info = {}
    check_no_leak(lambda: gmmdiff.sample(mix, n=1024, T=2, info=info), mix, info)


def test_sample_with_snapshots_and_dlpack(mix):
    def call():
        y, s = gmmdiff.sample(mix, n=1024, T=2, snapshot=[2], keep_on_device=True, backend="cpu")
        x = np.from_dlpack(y)
        cap = s[2].__dlpack__()  # never consumed: its destructor frees the tensor
        return x, cap

    check_no_leak(call, mix)


def test_sample_chunks(mix):
    check_no_leak(lambda: [c for c in gmmdiff.sample_chunks(mix, n=1024, T=2, chunk=256)], mix)
    check_no_leak(lambda: next(gmmdiff.sample_chunks(mix, n=4096, T=2, chunk=256)), mix)  # abandoned early


def test_tv(mix):
    y = gmmdiff.sample(mix, n=1024, T=2)
    yf = np.asfortranarray(y)
    check_no_leak(lambda: gmmdiff.tv(yf, mix, stats="means", bootstrap=20), mix, yf)


def test_mixture_and_errors(mix):
    means = np.ones((4, 16))

    def call():
        m = gmmdiff.Mixture(means, sd=0.5)
        _ = (m.means, m.weights, m.sd, m.log_density(means), m.score(means, abar=0.5))
        try:
            gmmdiff.sample(mix, n=0)
        except ValueError:
            pass
        try:
            gmmdiff.tv(np.zeros((3, 2)), mix)
        except ValueError:
            pass

    check_no_leak(call, mix, means)


def test_bracket():
    two = gmmdiff.Mixture.preset("two-point", d=2, radius=2, sd=0.5)
    info = {}

    def call():
        gmmdiff.bracket(two, T=4, n=64, M=2, n_lower=256, stats="means", bootstrap=20, info=info)
        try:
            gmmdiff.bracket(two, T=4, sampler="ddim", M=2)
        except ValueError:
            pass

    check_no_leak(call, two, info)
