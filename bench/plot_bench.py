#!/usr/bin/env python3
"""Plots of a benchmark run: throughput (elt-steps/s) against K (one panel per n) and against n
(one panel per K), with both limits drawn as lines: the memory limit (copy bandwidth / 8 bytes
per elt-step in fp32, 16 in fp64) and the FLOP limit (FLOP limit / 4K FLOP per elt-step). gmmdiff's
paths are solid, the peers (when the file comes from run_peers.py) dashed.

  python3 bench/plot_bench.py RESULTS.json [--outdir DIR] [--precision fp32] [--d 64]

RESULTS.json is what bench/run_peers.py writes, or a `gmmdiff bench --json` file. Writes
<stem>_vs_K.png and <stem>_vs_n.png into --outdir (default: beside the file).
"""
import argparse
import json
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

BYTES = {"fp32": 8, "fp64": 16}
STYLE = {  # series -> (colour, line style, marker)
    "gmmdiff auto": ("C0", "-", "o"), "gmmdiff fused": ("C2", "-", "o"), "gmmdiff products": ("C1", "-", "^"),
    "numpy": ("C3", "--", "s"), "PyTorch eager": ("C4", "--", "s"), "PyTorch compile": ("C5", "--", "D"),
}


def series_points(gm, peers, prec, d):
    """{series name: {(n, K): elt-steps/s}} for the timed results of precision prec at dimension d."""
    out = {}
    for r in gm["results"]:
        if r["status"] == "ok" and r["precision"] == prec and r["d"] == d:
            out.setdefault("gmmdiff " + r["path"], {})[(r["n"], r["K"])] = r["elt_steps_per_s"]
    if prec == "fp32":
        for r in peers:
            if r.get("status", "ok") == "ok" and r.get("elt_steps_per_s") and r.get("d") == d:
                name = "numpy" if r["peer"] == "numpy" else "PyTorch " + r.get("variant", "?")
                if r.get("device") not in (None, "cpu"):
                    name += " (%s)" % r["device"]
                out.setdefault(name, {})[(r["n"], r["K"])] = r["elt_steps_per_s"]
    return out


def style(name):
    for key, st in STYLE.items():
        if name.startswith(key):
            return st
    return ("C7", "--", "x")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("results")
    p.add_argument("--outdir", default=None)
    p.add_argument("--precision", default="fp32")
    p.add_argument("--d", type=int, default=None, help="the dimension to plot (default: the first in the file)")
    args = p.parse_args()
    with open(args.results) as f:
        doc = json.load(f)
    gm = doc["gmmdiff"] if "gmmdiff" in doc else doc
    peers = doc.get("peers", [])
    prec = args.precision
    ds = sorted({r["d"] for r in gm["results"]})
    d = args.d if args.d is not None else ds[0]
    pts = series_points(gm, peers, prec, d)
    if not pts:
        raise SystemExit("plot_bench: no timed %s results at d = %d in %s" % (prec, d, args.results))
    outdir = args.outdir or os.path.dirname(os.path.abspath(args.results))
    stem = os.path.splitext(os.path.basename(args.results))[0]
    copy_bw = gm.get("copy_bandwidth_bytes_per_s")
    mem_limit = copy_bw / BYTES[prec] if copy_bw else None
    flop_limit = (gm.get("flop_limit_flop_per_s") or {}).get(prec)
    device = gm.get("cpu_model") if gm.get("backend") == "cpu" else gm.get("device")
    subtitle = "%s %s (%s), %s, d = %d, %s; date %s" % (gm.get("backend", "?"), device, gm.get("device", "?"),
                                                       prec, d, gm.get("sampler", ""), gm.get("date", "?"))
    ns = sorted({n for s in pts.values() for (n, _) in s})
    Ks = sorted({k for s in pts.values() for (_, k) in s})

    def draw(xname, panels, xs, key, limit_flop, fname):
        fig, axes = plt.subplots(1, len(panels), figsize=(3.6 * len(panels) + 1.0, 4.2), sharey=True, squeeze=False)
        for ax, pv in zip(axes[0], panels):
            for name in sorted(pts):
                xy = sorted((x, pts[name][key(pv, x)]) for x in xs if key(pv, x) in pts[name])
                if xy:
                    c, ls, m = style(name)
                    ax.plot([a for a, _ in xy], [b for _, b in xy], color=c, ls=ls, marker=m, label=name)
            if mem_limit:
                ax.axhline(mem_limit, color="k", lw=1.3, label="memory limit: copy BW / %d B" % BYTES[prec])
            if flop_limit:
                fx, fy = limit_flop(pv)
                ax.plot(fx, fy, color="r", lw=1.3, label="FLOP limit / 4K")
            ax.set_xscale("log", base=2 if xname == "K" else 10)
            ax.set_yscale("log")
            ax.set_xlabel(xname)
            ax.set_title(("n = %g" if xname == "K" else "K = %d") % pv, fontsize=9)
            ax.grid(True, which="both", alpha=0.3)
        axes[0][0].set_ylabel("elt-steps/s")
        handles, labels = axes[0][0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="lower center", ncol=4, fontsize=8, frameon=False)
        fig.suptitle("throughput against %s\n%s" % (xname, subtitle), fontsize=9)
        fig.tight_layout(rect=(0, 0.14, 1, 1))
        path = os.path.join(outdir, "%s_%s.png" % (stem, fname))
        fig.savefig(path, dpi=120)
        plt.close(fig)
        print("plot_bench: wrote " + path)

    kk = [min(Ks) / 1.4] + Ks + [max(Ks) * 1.4]
    draw("K", ns, Ks, lambda n, k: (n, k), lambda n: (kk, [flop_limit / (4 * k) for k in kk]), "vs_K")
    nn = [min(ns) / 1.5] + ns + [max(ns) * 1.5]
    draw("n", Ks, ns, lambda k, n: (n, k), lambda k: (nn, [flop_limit / (4 * k)] * len(nn)), "vs_n")


if __name__ == "__main__":
    main()
