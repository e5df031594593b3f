"""Ctrl-C (a real SIGINT, sent by a timer thread) interrupts long work within a second, raises
KeyboardInterrupt, and leaves nothing behind: memory returned, no thread left running, no partial
sweep row; an interrupted sweep resumes to the rows of an uninterrupted one."""
import os
import signal
import threading
import time

import numpy as np
import pytest

import gmmdiff

# docs/python.md promises Ctrl-C within a second: the check runs every 0.1 s between the steps of
# a chunk, and an automatic CPU chunk keeps a step near 0.05 s on 2 loaded cores.
MAX_LATENCY_S = 1.0
# Memory a finished interrupted call may still hold (allocator caches, the OpenMP pool's stacks).
MAX_RSS_GROWTH = 48 << 20


def rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def os_threads():
    return len(os.listdir("/proc/self/task"))


class Sigint:
    """Sends SIGINT to this process `after` seconds from start() and records when. Made through the
    `sigint` fixture, which cancels it if the test ends first: a signal left pending would
    interrupt the next test instead."""

    def __init__(self, after):
        self.sent = None
        self.timer = threading.Timer(after, self._fire)

    def _fire(self):
        self.sent = time.monotonic()
        os.kill(os.getpid(), signal.SIGINT)

    def start(self):
        self.timer.start()
        return self

    def latency(self):
        self.timer.join()
        assert self.sent is not None
        return time.monotonic() - self.sent


@pytest.fixture
def sigint():
    timers = []

    def make(after):
        timers.append(Sigint(after))
        return timers[-1].start()

    yield make
    for t in timers:
        t.timer.cancel()


@pytest.fixture
def big_mix():
    mix = gmmdiff.Mixture.preset("random-sphere", d=64, K=16, radius=3, seed=1)
    gmmdiff.sample(mix, n=512, T=4)  # starts OpenMP's threads before anything is counted
    return mix


def test_sample_interrupt(big_mix, sigint):
    rss0, threads0 = rss_bytes(), os_threads()
    s = sigint(1.0)
    with pytest.raises(KeyboardInterrupt):
        gmmdiff.sample(big_mix, n=2_000_000, T=1000)  # minutes of work; 512 MB of result
    latency = s.latency()
    assert latency < MAX_LATENCY_S, f"KeyboardInterrupt {latency:.2f} s after SIGINT"
    assert rss_bytes() - rss0 < MAX_RSS_GROWTH, "the interrupted run's memory was freed"
    assert os_threads() == threads0
    # The module still works afterwards.
    assert gmmdiff.sample(big_mix, n=256, T=4).shape == (256, 64)


def test_sample_chunks_interrupt(big_mix, sigint):
    rss0, threads0 = rss_bytes(), os_threads()
    it = gmmdiff.sample_chunks(big_mix, n=10**7, T=1000)
    s = sigint(1.0)
    with pytest.raises(KeyboardInterrupt):
        for _ in it:  # the first chunk alone takes far longer than a second
            pass
    latency = s.latency()
    assert latency < MAX_LATENCY_S, f"KeyboardInterrupt {latency:.2f} s after SIGINT"
    with pytest.raises(StopIteration):
        next(it)  # the worker was stopped and joined
    assert os_threads() == threads0
    del it
    assert rss_bytes() - rss0 < MAX_RSS_GROWTH


def test_sweep_interrupt_then_resume(tmp_path, sigint):
    # The second run (T = 3000) takes seconds on 2 cores; the signal is sent 0.05 s after its first
    # progress call, so it lands while the run works, however fast the machine.
    spec = {
        "name": "interrupt",
        "family": "random-sphere", "d": 8, "K": 4, "radius": 3, "T": [8, 3000],
        "n": 40000, "backend": "cpu", "tv": {"stats": "means,radial", "bootstrap": 20},
    }
    out = tmp_path / "run"
    rows_done = []
    sig = []

    def on_row(row, i, total):
        rows_done.append(i)

    def progress(done, total):
        if rows_done and not sig:  # the first run is done: interrupt the second
            sig.append(sigint(0.05))

    with pytest.raises(KeyboardInterrupt):
        gmmdiff.sweep(spec, out=out, on_row=on_row, progress=progress, report=False)
    assert sig, "the second run never called progress"
    latency = sig[0].latency()
    assert latency < MAX_LATENCY_S, f"KeyboardInterrupt {latency:.2f} s after SIGINT"
    rows = gmmdiff.load_results(out)
    assert len(rows) == 1 and rows[0]["params"]["T"] == 8  # no partial row of the interrupted run
    info = {}
    resumed = gmmdiff.sweep(spec, out=out, report=False, info=info)  # the lock was released
    assert info["done_before"] == 1 and info["ran"] == 1
    assert any(n.startswith("resuming: 1 of 2 runs") for n in info["notes"])
    fresh = gmmdiff.sweep(spec, out=tmp_path / "fresh", report=False)
    timing = {"seconds", "eps_seconds", "wall_seconds", "elt_steps_per_s", "finished_at"}
    strip = lambda r: {k: v for k, v in r.items() if k not in timing}  # noqa: E731
    assert [strip(r) for r in resumed] == [strip(r) for r in fresh]


def test_tv_interrupt_between_chunks(sigint):
    mix = gmmdiff.Mixture.preset("random-sphere", d=16, K=8, radius=3, seed=1)
    # 2e9 rows of one float32 row broadcast (row stride 0: 64 bytes of memory), converted a chunk
    # at a time: minutes of work on any machine (2e6 rows take 0.1 s on 2 cores).
    row = np.random.default_rng(0).normal(size=16).astype(np.float32)
    y = np.broadcast_to(row, (2_000_000_000, 16))
    s = sigint(0.5)
    t0 = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        gmmdiff.tv(y, mix, stats="radial", bootstrap=20, chunk=4096)
    assert time.monotonic() - t0 > 0.5, "the signal came during the call"
    latency = s.latency()
    assert latency < MAX_LATENCY_S, f"KeyboardInterrupt {latency:.2f} s after SIGINT"


def test_bracket_interrupt(sigint):
    mix = gmmdiff.Mixture.preset("random-sphere", d=16, K=8, radius=3, seed=1)
    gmmdiff.bracket(mix, T=4, n=64, M=2, n_lower=512)  # starts the threads before they are counted
    threads0 = os_threads()
    s = sigint(0.5)
    t0 = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        gmmdiff.bracket(mix, T=1000, n=65536, M=32)  # the path bound alone: minutes of work
    assert time.monotonic() - t0 > 0.5, "the signal came during the call"
    latency = s.latency()
    assert latency < MAX_LATENCY_S, f"KeyboardInterrupt {latency:.2f} s after SIGINT"
    assert os_threads() == threads0
