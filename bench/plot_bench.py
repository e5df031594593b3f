#!/usr/bin/env python3
"""Plots of a benchmark run: throughput (elt-steps/s) against K and against n, with both limits
drawn as lines: the memory limit (copy bandwidth / 8 bytes per elt-step, fp32) and the FLOP
limit (FLOP limit / 4K FLOP per elt-step). Peers (when the file comes from run_peers.py) are drawn
dashed.

  python3 bench/plot_bench.py RESULTS.json [--outdir DIR] [--precision fp32]

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


def load(path):
    with open(path) as f:
        doc = json.load(f)
    gm = doc["gmmdiff"] if "gmmdiff" in doc else doc
    return doc, gm, doc.get("peers", [])


def peer_name(rec):
    return rec["peer"] if rec["peer"] == "numpy" else "PyTorch " + rec.get("variant", "?") + " (%s)" % rec.get("device", "?")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("results")
    p.add_argument("--outdir", default=None)
    p.add_argument("--precision", default="fp32")
    args = p.parse_args()
    doc, gm, peers = load(args.results)
    prec = args.precision
    outdir = args.outdir or os.path.dirname(os.path.abspath(args.results))
    stem = os.path.splitext(os.path.basename(args.results))[0]
    mem_limit = gm["copy_bandwidth_bytes_per_s"] / BYTES[prec]
    flop_limit = (gm.get("flop_limit_flop_per_s") or {}).get(prec)
    rows = [r for r in gm["results"] if r["status"] == "ok" and r["precision"] == prec]
    if not rows:
        raise SystemExit("plot_bench: no timed %s results in %s" % (prec, args.results))
    title_dev = "%s, %s" % (gm.get("cpu_model") if gm.get("backend") == "cpu" else gm.get("device"), gm.get("device"))
    subtitle = "%s; %s %s" % (gm.get("date", "?"), gm.get("backend", "?"), title_dev)
    ok_peers = [r for r in peers if r.get("status", "ok") == "ok" and r.get("elt_steps_per_s")]
    written = []

    def finish(ax, fig, xlabel, name):
        ax.set_xscale("log", base=2 if xlabel == "K" else 10)
        ax.set_yscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("elt-steps/s (%s)" % prec)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7, loc="best")
        fig.tight_layout()
        path = os.path.join(outdir, "%s_%s.png" % (stem, name))
        fig.savefig(path, dpi=120)
        plt.close(fig)
        written.append(path)

    # Throughput against K, one line per (n, d).
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    keys = sorted({(r["n"], r["d"], r["path"]) for r in rows})
    Ks = sorted({r["K"] for r in rows})
    for n, d, path in keys:
        pts = sorted((r["K"], r["elt_steps_per_s"]) for r in rows if (r["n"], r["d"], r["path"]) == (n, d, path))
        ax.plot([k for k, _ in pts], [v for _, v in pts], "o-", label="gmmdiff %s n=%g d=%d" % (path, n, d))
    for name in sorted({peer_name(r) for r in ok_peers}):
        for n, d in sorted({(r["n"], r["d"]) for r in ok_peers}):
            pts = sorted((r["K"], r["elt_steps_per_s"]) for r in ok_peers if peer_name(r) == name and (r["n"], r["d"]) == (n, d))
            if pts:
                ax.plot([k for k, _ in pts], [v for _, v in pts], "s--", alpha=0.8, label="%s n=%g d=%d" % (name, n, d))
    ax.axhline(mem_limit, color="k", lw=1.2, label="memory limit (copy BW / %d B)" % BYTES[prec])
    if flop_limit:
        kk = [min(Ks) / 1.5] + Ks + [max(Ks) * 1.5]
        ax.plot(kk, [flop_limit / (4 * k) for k in kk], color="r", lw=1.2, label="FLOP limit / 4K")
    ax.set_title("throughput against K\n" + subtitle, fontsize=9)
    finish(ax, fig, "K", "vs_K")

    # Throughput against n, one line per (K, d).
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    keys = sorted({(r["K"], r["d"], r["path"]) for r in rows})
    for K, d, path in keys:
        pts = sorted((r["n"], r["elt_steps_per_s"]) for r in rows if (r["K"], r["d"], r["path"]) == (K, d, path))
        line, = ax.plot([n for n, _ in pts], [v for _, v in pts], "o-", label="gmmdiff %s K=%d d=%d" % (path, K, d))
        if flop_limit:
            ax.axhline(flop_limit / (4 * K), color=line.get_color(), lw=0.8, ls=":",
                       label="FLOP limit / 4K, K=%d" % K)
    for name in sorted({peer_name(r) for r in ok_peers}):
        for K, d in sorted({(r["K"], r["d"]) for r in ok_peers}):
            pts = sorted((r["n"], r["elt_steps_per_s"]) for r in ok_peers if peer_name(r) == name and (r["K"], r["d"]) == (K, d))
            if len(pts) > 1:
                ax.plot([n for n, _ in pts], [v for _, v in pts], "s--", alpha=0.7, label="%s K=%d d=%d" % (name, K, d))
    ax.axhline(mem_limit, color="k", lw=1.2, label="memory limit (copy BW / %d B)" % BYTES[prec])
    ax.set_title("throughput against n\n" + subtitle, fontsize=9)
    finish(ax, fig, "n", "vs_n")
    for w in written:
        print("plot_bench: wrote " + w)


if __name__ == "__main__":
    main()
