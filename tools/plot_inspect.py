#!/usr/bin/env python3
"""Plot of `gmmdiff inspect --json Q.json` (docs/claims.md): plot_inspect.py Q.json OUT.png

Three panels against t (log x axis): tr(I + J_t) (mean, 99.9th percentile and max over X_t ~ p_t,
and over the sampler's Y_t when measured) beside log(KT), the key lemma's scale; ||J_t||_op (mean
and max: the max is a lower bound on the score's Lipschitz constant); the second moment E|X_t|^2
(Monte Carlo over both populations and the closed form).

Exit status: 0 written, 3 Matplotlib missing, 2 bad input. Only Matplotlib and the standard library.
"""
import json
import math
import os
import signal
import sys

try:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
except ImportError:
    sys.exit(3)


def ok(x):
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def series(rows, pop, key):
    ts, ys = [], []
    for r in rows:
        p = r.get(pop)
        if isinstance(p, dict) and ok(p.get(key)):
            ts.append(r["t"])
            ys.append(p[key])
    return ts, ys


def main():
    if len(sys.argv) != 3:
        print("usage: plot_inspect.py Q.json OUT.png", file=sys.stderr)
        return 2
    try:
        with open(sys.argv[1]) as f:
            q = json.load(f)
        rows = sorted(q["rows"], key=lambda r: r["t"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        print(f"plot_inspect.py: {sys.argv[1]}: {e}", file=sys.stderr)
        return 2
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.6))
    title = f"d = {q.get('d')}, K = {q.get('K')}, {q.get('schedule')} T = {q.get('T')}, n = {q.get('n')} per step"
    if q.get("sampler"):
        title += f", sampler {q['sampler']}"
    fig.suptitle("gmmdiff inspect: " + title)
    styles = {"forward": ("C0", "X_t ~ p_t"), "sampler": ("C3", "sampler Y_t")}
    ax = axes[0]
    for pop, (c, name) in styles.items():
        for key, ls, lab in (("trace_IJ_mean", "-", "mean"), ("trace_IJ_p999", "--", "99.9%"), ("trace_IJ_max", ":", "max")):
            t, y = series(rows, pop, key)
            if t:
                ax.plot(t, y, ls, color=c, marker="o" if ls == "-" else None, ms=3, label=f"{name} {lab}")
    if ok(q.get("log_KT")):
        ax.axhline(q["log_KT"], color="k", lw=1, label="log(KT)")
    ax.set_title("tr(I + J_t)  (key lemma: <~ log(KT) for sd 1)")
    ax = axes[1]
    for pop, (c, name) in styles.items():
        for key, ls, lab in (("jac_opnorm_mean", "-", "mean"), ("jac_opnorm_max", ":", "max")):
            t, y = series(rows, pop, key)
            if t:
                ax.plot(t, y, ls, color=c, marker="o" if ls == "-" else None, ms=3, label=f"{name} {lab}")
    ax.set_title("||J_t||_op  (max: a lower bound on Lip(s_t))")
    ax = axes[2]
    for pop, (c, name) in styles.items():
        t, y = series(rows, pop, "second_moment")
        if t:
            ax.plot(t, y, "-", color=c, marker="o", ms=3, label=f"{name} (Monte Carlo)")
    t = [r["t"] for r in rows if ok(r.get("second_moment_exact"))]
    y = [r["second_moment_exact"] for r in rows if ok(r.get("second_moment_exact"))]
    if t:
        ax.plot(t, y, "k--", lw=1, label="E|X_t|^2 exact")
    ax.set_title("second moment E|x|^2")
    for ax in axes:
        ax.set_xscale("log")
        ax.set_xlabel("t")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    # Whole or not at all: into a partial file beside OUT, renamed over it when complete, so an
    # interrupted plot leaves no half-written OUT (nor the partial file: the finally block).
    final = sys.argv[2]
    head, name = os.path.split(final)
    partial = os.path.join(head, "." + name + ".partial")
    fmt = os.path.splitext(name)[1].lstrip(".").lower() or "png"
    try:
        fig.savefig(partial, dpi=110, format=fmt)
        os.replace(partial, final)
    except (OSError, ValueError) as e:
        print(f"plot_inspect.py: {final}: {e}", file=sys.stderr)
        return 2
    finally:
        if os.path.exists(partial):
            os.remove(partial)
        plt.close(fig)
    return 0


def stop(signum, frame):
    """SIGTERM and SIGHUP end the script like Ctrl-C: through the finally block that removes the partial plot."""
    raise SystemExit(128 + signum)


if __name__ == "__main__":
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, stop)
    sys.exit(main())
