"""Shared by the peers: the model, the schedule, the argument parser and the JSON line.

The peers run the same sampler as `gmmdiff bench` (docs/bench.md): random-sphere means of
radius 2, sd 1, uniform weights; the lcw schedule (arXiv 2504.05300 eq. (14)) with c0 = 2,
c1 = 10; DDPM with sigma_t^2 = 1 - alpha_t; n particles, T steps, stop 1 (T - 1 steps taken).
Throughput is n * d * (T - 1) / seconds (elt-steps/s), the median over repeats after warm-up;
only the T - 1 steps are timed (Y_T is drawn before the clock starts), as in `gmmdiff bench`.
"""
import argparse
import json
import math
import platform
import time

import numpy as np


def lcw_schedule(T, c0=2.0, c1=10.0):
    """abar[0..T] and alpha[1..T] (alpha[0] unused) in float64, as host/core/schedule.cpp does."""
    abar = np.ones(T + 1)
    oma = np.zeros(T + 1)
    c = c1 * math.log(T) / T
    abar[T] = T ** (-c0)
    oma[T] = -math.expm1(-c0 * math.log(T))
    for t in range(T, 1, -1):
        f = 1.0 - c * abar[t]
        if f <= 0:
            oma[t - 1], abar[t - 1] = 0.0, 1.0
            continue
        oma[t - 1] = oma[t] * f
        abar[t - 1] = 1.0 - oma[t - 1] if oma[t - 1] < 0.5 else abar[t] + c * abar[t] * oma[t]
    alpha = np.ones(T + 1)
    alpha[1:] = abar[1:] / abar[:-1]
    # 1 - alpha_t from 1 - abar without cancellation, as the C++ driver does.
    one_minus_alpha = np.zeros(T + 1)
    one_minus_alpha[1:] = (oma[1:] - oma[:-1]) / abar[:-1]
    return abar, alpha, one_minus_alpha


def random_sphere_means(K, d, radius=2.0, seed=0):
    rng = np.random.default_rng(seed + 12345)
    m = rng.standard_normal((K, d))
    return radius * m / np.linalg.norm(m, axis=1, keepdims=True)


def parser(description):
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--n", type=int, default=100000)
    p.add_argument("--d", type=int, default=64)
    p.add_argument("--K", type=int, default=8)
    p.add_argument("--T", type=int, default=16, help="schedule length; T - 1 steps are taken (stop 1)")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    return p


def time_runs(setup, run, repeats, warmup, sync=lambda: None):
    """Median seconds of run(setup()) over repeats, after warmup untimed runs. Only run() is
    timed: the initial particles Y_T are drawn by setup(), outside the timing, as `gmmdiff bench`
    times only the steps of a pass."""
    for _ in range(warmup):
        run(setup())
    sync()
    times = []
    for _ in range(repeats):
        y = setup()
        sync()
        t0 = time.perf_counter()
        run(y)
        sync()
        times.append(time.perf_counter() - t0)
    return float(np.median(times)), times


def emit(peer, variant, device, args, seconds, times, **extra):
    steps = args.T - 1
    rec = {
        "peer": peer, "variant": variant, "device": device, "host": platform.node(),
        "n": args.n, "d": args.d, "K": args.K, "T": args.T, "steps": steps, "precision": "fp32",
        "seconds_median": seconds, "seconds_all": times, "repeats": args.repeats, "warmup": args.warmup,
        "elt_steps_per_s": (args.n * args.d * steps / seconds) if seconds > 0 else None,
    }
    rec.update(extra)
    print(json.dumps(rec), flush=True)
