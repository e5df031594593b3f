#!/usr/bin/env python3
"""The gmmdiff sampler as a researcher would write it in PyTorch in an afternoon (float32), eager
and, with PyTorch >= 2, torch.compile'd; on CUDA when available, else the CPU.

Per step: logits from the product X M^T, a row softmax, the score from W M, the DDPM update
with fresh normal noise. Prints one JSON line per variant (bench/peers/common.py says what is
measured); a variant that cannot run prints its line with "unavailable" and the reason.
"""
import json
import os
import sys

import numpy as np

from common import emit, lcw_schedule, parser, random_sphere_means, time_runs

try:
    import torch
except ImportError as e:  # the runner reports the peer as unavailable
    print(json.dumps({"peer": "torch", "variant": "eager", "status": "unavailable", "reason": str(e)}))
    sys.exit(0)


def make_step(mu, logw, sd2, d):
    mu_sq = (mu.double() ** 2).sum(1)

    def step(y, abar, alpha, oma, z):
        v = abar * sd2 + (1.0 - abar)                       # [K] variances of the noised components (float64)
        sa = abar ** 0.5
        logits = y @ (mu.T * (sa / v)).float()               # [n, K]
        logits = logits + (logw - 0.5 * d * torch.log(v) - 0.5 * abar * mu_sq / v).float()
        if not bool(torch.all(v == v[0])):
            logits = logits - (0.5 / v).float() * (y * y).sum(1, keepdim=True)
        w = torch.softmax(logits, dim=1)
        score = w @ (mu * (sa / v)[:, None]).float() - (w @ (1.0 / v).float())[:, None] * y
        return (y + oma * score) * (1.0 / alpha ** 0.5) + (oma ** 0.5) * z

    return step


def main():
    p = parser(__doc__)
    p.add_argument("--device", default="auto", help="auto | cpu | cuda")
    p.add_argument("--variants", default="eager,compile", help="eager, compile (torch.compile)")
    p.add_argument("--threads", type=int, default=0,
                   help="CPU threads (0: all cores, as gmmdiff's default; Debian's PyTorch 1.13 starts with 1)")
    args = p.parse_args()
    torch.set_num_threads(args.threads if args.threads > 0 else (os.cpu_count() or 1))
    dev = "cuda" if args.device == "auto" and torch.cuda.is_available() else ("cpu" if args.device == "auto" else args.device)
    device = torch.device(dev)
    torch.manual_seed(args.seed)
    abar, alpha, oma = lcw_schedule(args.T)
    mu = torch.from_numpy(random_sphere_means(args.K, args.d, seed=args.seed)).to(device)  # float64
    logw = torch.full((args.K,), 1.0 / args.K, dtype=torch.float64, device=device).log()
    sd2 = torch.ones(args.K, dtype=torch.float64, device=device)
    # Schedule values as 0-d float64 tensors: torch.compile would specialise on Python floats and
    # recompile for every step.
    abar_t = torch.from_numpy(abar).to(device)
    alpha_t = torch.from_numpy(alpha).to(device)
    oma_t = torch.from_numpy(oma).to(device)
    dev_name = torch.cuda.get_device_name(device) if dev == "cuda" else "cpu"
    sync = (lambda: torch.cuda.synchronize(device)) if dev == "cuda" else (lambda: None)
    base_step = make_step(mu, logw, sd2, args.d)

    for variant in args.variants.split(","):
        step = base_step
        if variant == "compile":
            if not hasattr(torch, "compile"):
                print(json.dumps({"peer": "torch", "variant": "compile", "status": "unavailable",
                                  "reason": "torch.compile needs PyTorch >= 2 (this is %s)" % torch.__version__,
                                  "device": dev_name, "n": args.n, "d": args.d, "K": args.K, "T": args.T}),
                      flush=True)
                continue
            step = torch.compile(base_step)

        def setup():
            return torch.randn(args.n, args.d, device=device, dtype=torch.float32)

        out = {}

        @torch.no_grad()
        def run(y):
            for t in range(args.T, 1, -1):
                z = torch.randn_like(y)
                y = step(y, abar_t[t], alpha_t[t], oma_t[t], z)
            out["y"] = y

        try:
            sec, times = time_runs(setup, run, args.repeats, args.warmup, sync)
        except Exception as e:  # e.g. torch.compile without a working compiler toolchain
            print(json.dumps({"peer": "torch", "variant": variant, "status": "unavailable",
                              "reason": "%s: %s" % (type(e).__name__, str(e).splitlines()[0] if str(e) else ""),
                              "device": dev_name, "n": args.n, "d": args.d, "K": args.K, "T": args.T}), flush=True)
            continue
        assert bool(torch.isfinite(out["y"]).all()), "torch peer: non-finite output"
        emit("torch", variant, dev_name, args, sec, times, torch_version=torch.__version__,
             threads=torch.get_num_threads())


if __name__ == "__main__":
    main()
