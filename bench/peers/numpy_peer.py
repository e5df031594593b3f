#!/usr/bin/env python3
"""The gmmdiff sampler as a researcher would write it in NumPy in an afternoon (float32).

Per step: logits from the product X M^T, a row softmax, the score from W M, the DDPM update
with fresh normal noise. Prints one JSON line (bench/peers/common.py says what is measured).
"""
import numpy as np

from common import emit, lcw_schedule, parser, random_sphere_means, time_runs


def sample(y, mu, logw, sd2, abar, alpha, oma, rng, stop=1):
    """Runs t = T..stop+1 on y in place (float32); returns y."""
    T = len(abar) - 1
    mu_sq = (mu.astype(np.float64) ** 2).sum(1)
    for t in range(T, stop, -1):
        v = abar[t] * sd2 + (1.0 - abar[t])                      # [K] variances of the noised components
        sa = np.sqrt(abar[t])
        logits = (y @ (mu.T * (sa / v)).astype(np.float32))     # [n, K]
        logits += (logw - 0.5 * mu.shape[1] * np.log(v) - 0.5 * abar[t] * mu_sq / v).astype(np.float32)
        if not np.all(v == v[0]):
            logits -= (0.5 / v).astype(np.float32) * (y * y).sum(1, keepdims=True)
        logits -= logits.max(axis=1, keepdims=True)
        w = np.exp(logits)
        w /= w.sum(axis=1, keepdims=True)
        score = w @ (mu * (sa / v)[:, None]).astype(np.float32) - (w @ (1.0 / v).astype(np.float32))[:, None] * y
        z = rng.standard_normal(y.shape, dtype=np.float32)
        y = (y + np.float32(oma[t]) * score) * np.float32(1.0 / np.sqrt(alpha[t])) + np.float32(np.sqrt(oma[t])) * z
    return y


def main():
    args = parser(__doc__).parse_args()
    abar, alpha, oma = lcw_schedule(args.T)
    mu = random_sphere_means(args.K, args.d, seed=args.seed).astype(np.float32)
    logw = np.log(np.full(args.K, 1.0 / args.K))
    sd2 = np.ones(args.K)
    rng = np.random.default_rng(args.seed)

    def setup():
        return rng.standard_normal((args.n, args.d), dtype=np.float32)

    out = {}

    def run(y):
        out["y"] = sample(y, mu, logw, sd2, abar, alpha, oma, rng)

    sec, times = time_runs(setup, run, args.repeats, args.warmup)
    assert np.isfinite(out["y"]).all(), "numpy peer: non-finite output"
    emit("numpy", "numpy " + np.__version__, "cpu", args, sec, times)


if __name__ == "__main__":
    main()
