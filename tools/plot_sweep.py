#!/usr/bin/env python3
"""Plots of a gmmdiff sweep (docs/sweeps.md): reads DIR/report.json, written by `gmmdiff report DIR`
or at the end of `gmmdiff sweep`, and writes into DIR:

  tv_vs_T.png    TV against T on log-log axes, one panel per family (a series per d), with the
                 95% CIs, the fitted slope, the Theorem-1 shape C f(T) and the noise floor (dashed,
                 shaded below); for rows with bounds, the band from the lower bound's CI low end to
                 the upper side (shaded in the series' colour), the ddim exact TV with its CI
                 (diamonds) and the exact reference of reducible models (crosses);
  tv_vs_d.png    TV against d at fixed T (a series per T);
  tv_vs_K.png    TV against K at fixed T, when the sweep varies K;
  tv_vs_eps.png  TV against the realised eps_score, when the sweep injects score errors.

Unresolved points (their CI reaches 0) are drawn as open triangles at the upper end of their CI.
More than 12 panels go to further files (tv_vs_T_2.png, ...).

Exit status: 0 plots written, 3 Matplotlib missing (gmmdiff says so in one line), 2 bad input.
Only Matplotlib and the standard library are used.
"""
import json
import math
import os
import sys

try:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker
except ImportError:
    sys.exit(3)

PANELS_PER_FIGURE = 12
COLORS = plt.rcParams["axes.prop_cycle"].by_key()["color"]


def ok(x):
    return x is not None and isinstance(x, (int, float)) and math.isfinite(x)


def shape(K, T):
    """Theorem 1 of arXiv 2504.05300: log^2(KT) log^2(T) / T."""
    return math.log(K * T) ** 2 * math.log(T) ** 2 / T


def fmt_fit(f):
    if not ok(f.get("b")):
        return "-"
    if ok(f.get("ci_lo")) and ok(f.get("ci_hi")):
        return "%+.2f [%+.2f, %+.2f]" % (f["b"], f["ci_lo"], f["ci_hi"])
    return "%+.2f" % f["b"]


def grid(n):
    cols = min(n, 3)
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols, 4.0 * rows), squeeze=False)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, list(axes.flat[:n])


def draw_points(ax, xs, pts, color, label):
    """Resolved points with CI bars; unresolved ones as open triangles at their CI's upper end."""
    rx, ry, lo, hi = [], [], [], []
    ux, uy = [], []
    for x, p in zip(xs, pts):
        if p["resolved"] and ok(p["tv"]) and p["tv"] > 0:
            rx.append(x)
            ry.append(p["tv"])
            lo.append(max(p["tv"] - p["ci_lo"], 0) if ok(p["ci_lo"]) else 0)
            hi.append(max(p["ci_hi"] - p["tv"], 0) if ok(p["ci_hi"]) else 0)
        elif ok(p.get("ci_hi")) and p["ci_hi"] > 0:
            ux.append(x)
            uy.append(p["ci_hi"])
    if rx:
        ax.errorbar(rx, ry, yerr=[lo, hi], fmt="o-", color=color, ms=4, lw=1.2, capsize=2, label=label)
    if ux:
        ax.plot(ux, uy, "v", mfc="none", color=color, ms=6, label=None if rx else label + " (unresolved)")


def draw_band(ax, xs, pts, color, tag):
    """Rows with bounds: TV lies between the lower bound's CI low end and the upper side (the band);
    exact values where known. Their legend entries name the series (`tag`, e.g. "d=8 K=8"), since a
    panel holds one band per series. Returns the values drawn (for the y range)."""
    drawn = []
    band = [(x, max(p["ci_lo"], 0), p["upper"]) for x, p in zip(xs, pts)
            if p.get("bounded") and ok(p.get("upper")) and ok(p.get("ci_lo"))]
    if band:
        band.sort()
        bx = [b[0] for b in band]
        lo = [b[1] if b[1] > 0 else b[2] * 1e-3 for b in band]  # an unresolved lower end: the band opens downwards
        hi = [b[2] for b in band]
        ax.fill_between(bx, lo, hi, color=color, alpha=0.15, lw=0)
        ax.plot(bx, hi, ls="--", color=color, lw=1, label="%s: upper bound" % tag)
        drawn += hi
    ex = [(x, p["exact"], p["exact_ci"]) for x, p in zip(xs, pts) if ok(p.get("exact"))]
    if ex:
        lo = [max(e[1] - e[2][0], 0) for e in ex]
        hi = [max(e[2][1] - e[1], 0) for e in ex]
        ax.errorbar([e[0] for e in ex], [e[1] for e in ex], yerr=[lo, hi], fmt="D", mfc="none", color=color, ms=5,
                    capsize=2, label="%s: exact (ddim)" % tag)
        drawn += [e[1] for e in ex]
    ref = [(x, p["reference"]) for x, p in zip(xs, pts) if ok(p.get("reference")) and p["reference"] > 0]
    if ref:
        ax.plot([r[0] for r in ref], [r[1] for r in ref], "x", color=color, ms=7, label="%s: exact reference" % tag)
        drawn += [r[1] for r in ref]
    return drawn


def draw_floor(ax, xs, floors):
    pairs = sorted((x, f) for x, f in zip(xs, floors) if ok(f) and f > 0)
    if not pairs:
        return
    x = [p[0] for p in pairs]
    f = [p[1] for p in pairs]
    if len(x) == 1:
        ax.axhline(f[0], color="0.4", ls="--", lw=1, label="noise floor")
        ax.axhspan(1e-12, f[0], color="0.85", alpha=0.5, lw=0)
        return
    ax.plot(x, f, color="0.4", ls="--", lw=1, label="noise floor")
    ax.fill_between(x, [1e-12] * len(f), f, color="0.85", alpha=0.5, lw=0)


def finish(ax, xlabel, title, bounded=False):
    ax.set_xlabel(xlabel)
    ax.set_ylabel("TV: lower bound (points) to upper bound (band)" if bounded else "TV (lower bound, bias-corrected)")
    ax.set_title(title, fontsize=9)
    ax.grid(True, which="both", alpha=0.25)
    ax.legend(fontsize=7, loc="best")


def value_ticks(ax, values):
    """Label a log x axis with the swept values themselves (64, 96, 128, ...), not powers of 2."""
    v = sorted(set(values))
    ax.set_xticks(v)
    ax.set_xticklabels([("%g" % x) for x in v], fontsize=7)
    ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())


def autoscale_log_y(ax, values):
    v = [x for x in values if ok(x) and x > 0]
    if v:
        ax.set_ylim(min(v) / 2.0, max(v) * 2.0)


def save(fig, out_dir, stem, page):
    """Writes the figure whole or not at all: into a partial file, renamed into place when complete,
    so an interrupted run leaves the previous plot (gmmdiff removes plots a run did not redraw only
    after it finished)."""
    name = "%s.png" % stem if page == 0 else "%s_%d.png" % (stem, page + 1)
    fig.tight_layout()
    final = os.path.join(out_dir, name)
    partial = os.path.join(out_dir, "." + name + ".partial")
    try:
        fig.savefig(partial, dpi=110, format="png")
        os.replace(partial, final)
    finally:
        if os.path.exists(partial):
            os.remove(partial)
        plt.close(fig)


def paged(items, out_dir, stem, draw):
    for page in range(0, (len(items) + PANELS_PER_FIGURE - 1) // PANELS_PER_FIGURE):
        chunk = items[page * PANELS_PER_FIGURE:(page + 1) * PANELS_PER_FIGURE]
        fig, axes = grid(len(chunk))
        for ax, item in zip(axes, chunk):
            draw(ax, item)
        save(fig, out_dir, stem, page)


def plot_tv_vs_T(rep, out_dir):
    groups = {g["id"]: g for g in rep["t_groups"]}
    panels, covered = [], set()
    for a in rep["across_d"]:
        if a["params"]["score_error"] != "none" or len(a["at"]) < 2:
            continue
        panels.append((a["label"], [groups[m] for m in a["members"]], a))
        covered.update(a["members"])
    for g in rep["t_groups"]:
        if g["id"] not in covered and len(g["points"]) >= 2:
            panels.append((g["label"], [g], None))
    if not panels:
        return

    def draw(ax, item):
        label, members, across = item
        allv = []
        for i, g in enumerate(members):
            color = COLORS[i % len(COLORS)]
            pts = g["points"]
            Ts = [p["T"] for p in pts]
            tag = "d=%d K=%d" % (g["params"]["d"], g["params"]["K"]) if len(members) > 1 else g["id"]
            draw_points(ax, Ts, pts, color, "%s: slope %s" % (tag, fmt_fit(g["slope"])))
            allv += draw_band(ax, Ts, pts, color, tag)
            f = g["slope"]
            res = [p["T"] for p in pts if p["resolved"] and p["tv"] > 0]
            if ok(f.get("a")) and ok(f.get("b")) and len(res) >= 2:
                xs = [min(res), max(res)]
                ax.plot(xs, [math.exp(f["a"] + f["b"] * math.log(x)) for x in xs], ls=":", color=color, lw=1)
            allv += [p["tv"] for p in pts if p["resolved"]] + [p["ci_hi"] for p in pts] + [p["floor"] for p in pts]
        # The Theorem-1 shape, scaled by the median constant of the largest-d member.
        g = members[-1]
        if ok(g.get("shape_C")):
            Ts = sorted(p["T"] for p in g["points"])
            ax.plot(Ts, [g["shape_C"] * shape(g["params"]["K"], T) for T in Ts], color="k", lw=1, ls="-.",
                    label="C log²(KT) log²(T)/T (d=%d)" % g["params"]["d"])
        draw_floor(ax, [p["T"] for p in members[0]["points"]], [p["floor"] for p in members[0]["points"]])
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        value_ticks(ax, [p["T"] for g in members for p in g["points"]])
        autoscale_log_y(ax, allv)
        title = label
        if across is not None:
            title += "\n%s (ratio over d %s)" % (across["verdict"],
                                                  ("%.2f at T=%d" % (across["ratio"], across["ratio_T"]))
                                                  if across["ratio_T"] else "-")
        finish(ax, "T (steps)", title, any(p.get("bounded") for g in members for p in g["points"]))

    paged(panels, out_dir, "tv_vs_T", draw)


def plot_across(rep, out_dir, axis):
    groups = {g["id"]: g for g in rep["t_groups"]}
    items = rep["across_" + axis]
    exact = [a for a in items if a["params"]["score_error"] == "none"]
    items = exact or items  # score-error groups go to tv_vs_eps.png unless nothing else varies the axis
    if not items:
        return

    def draw(ax, a):
        Ts = [x["T"] for x in a["at"]]
        show = Ts[-3:] if len(Ts) > 3 else Ts  # the largest T: where the question is asked
        allv = []
        floors = []
        for i, T in enumerate(show):
            pts, xs = [], []
            for v, m in zip(a["values"], a["members"]):
                for p in groups[m]["points"]:
                    if p["T"] == T:
                        pts.append(p)
                        xs.append(v)
                        floors.append((v, p["floor"]))
            draw_points(ax, xs, pts, COLORS[i % len(COLORS)], "T=%d" % T)
            allv += [p["tv"] for p in pts if p["resolved"]] + [p["ci_hi"] for p in pts] + [p["floor"] for p in pts]
        best = {}
        for v, f in floors:
            best[v] = max(best.get(v, 0), f)
        draw_floor(ax, list(best.keys()), list(best.values()))
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        value_ticks(ax, a["values"])
        autoscale_log_y(ax, allv)
        finish(ax, axis, "%s\ngrowth of TV/f along %s: %s; %s" % (a["label"], axis, fmt_fit(a["axis_growth"]),
                                                                  a["verdict"]))

    paged(items, out_dir, "tv_vs_" + axis, draw)


def plot_eps(rep, out_dir):
    items = rep["eps_groups"]
    if not items:
        return

    def draw(ax, e):
        pts = e["points"]
        xs = [p["eps_score"] for p in pts]
        draw_points(ax, xs, pts, COLORS[0], "TV")
        f = e["fit"]
        res = [p["eps_score"] for p in pts if p["resolved"]]
        if ok(f.get("a")) and ok(f.get("b")) and len(res) >= 2:
            x = [min(res), max(res)]
            ax.plot(x, [f["a"] + f["b"] * t for t in x], ls=":", color=COLORS[0], lw=1,
                    label="TV = a + b eps_score, b = %s" % fmt_fit(f))
        draw_floor(ax, xs, [p["floor"] for p in pts])
        ax.set_ylim(0, max([p["ci_hi"] for p in pts if ok(p["ci_hi"])] + [p["floor"] for p in pts]) * 1.2)
        ax.set_xlabel("realised eps_score")
        ax.set_ylabel("TV (lower bound, bias-corrected)")
        ax.set_title("%s, T=%d" % (e["label"], e["T"]), fontsize=9)
        ax.grid(True, alpha=0.25)
        ax.legend(fontsize=7, loc="best")

    paged(items, out_dir, "tv_vs_eps", draw)


def stop(signum, frame):
    """SIGTERM and SIGHUP end the script like Ctrl-C: through the finally blocks that remove a partial plot."""
    raise SystemExit(128 + signum)


def main(argv):
    import signal

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, stop)
    if len(argv) != 2:
        print("usage: plot_sweep.py DIR (a gmmdiff sweep output holding report.json)", file=sys.stderr)
        return 2
    out_dir = argv[1]
    path = os.path.join(out_dir, "report.json")
    try:
        with open(path) as f:
            rep = json.load(f)
    except (OSError, ValueError) as e:
        print("plot_sweep.py: %s: %s" % (path, e), file=sys.stderr)
        return 2
    for name in os.listdir(out_dir):  # partial plots of a run killed with SIGKILL
        if name.startswith(".tv_vs_") and name.endswith(".png.partial"):
            os.remove(os.path.join(out_dir, name))
    plot_tv_vs_T(rep, out_dir)
    plot_across(rep, out_dir, "d")
    plot_across(rep, out_dir, "K")
    plot_eps(rep, out_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
