#!/usr/bin/env python3
"""Runs `gmmdiff bench` and the peers (bench/peers/: NumPy, PyTorch eager and torch.compile) on the
same configurations in one run, prints the ratio table (gmmdiff / peer, in elt-steps/s) and
writes everything to bench/results/<date>-<host>.json (then, with --plot, the PNGs beside it).

All of them run the same sampler: random-sphere means of radius 2, sd 1, uniform weights, the lcw
schedule (c0 = 2, c1 = 10), DDPM, fp32, stop 1; a pass is the T - 1 steps, Y_T drawn before the
clock starts; the figure is the median pass after warm-up. docs/bench.md explains the fields.

Example (the CPU figures of bench/RESULTS.md):
  /usr/bin/python3 bench/run_peers.py --gmmdiff build/gmmdiff --n 1e5,1e6 --d 64 --K 8,16,32,64 --plot
"""
import argparse
import datetime
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def as_count(s):
    v = float(s)
    if v != int(v) or v < 1:
        raise argparse.ArgumentTypeError("%s is not a positive integer" % s)
    return int(v)


def int_list(s):
    return [as_count(x) for x in s.split(",") if x]


def cpu_ticks():
    """(total, steal) ticks of all CPUs from /proc/stat, or None where the kernel does not say."""
    try:
        with open("/proc/stat") as f:
            parts = f.readline().split()
    except OSError:
        return None
    if len(parts) < 9 or parts[0] != "cpu":
        return None
    v = [int(x) for x in parts[1:9]]  # user nice system idle iowait irq softirq steal
    return sum(v), v[7]


def steal_percent(a, b):
    """Of all CPUs' time between two cpu_ticks(), the percentage the hypervisor took (None: unknown)."""
    if a is None or b is None or b[0] <= a[0]:
        return None
    return 100.0 * (b[1] - a[1]) / (b[0] - a[0])


def run(cmd, **kw):
    print("+ " + " ".join(shlex.quote(c) for c in cmd), file=sys.stderr, flush=True)
    return subprocess.run(cmd, check=True, text=True, stdout=subprocess.PIPE, **kw)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--gmmdiff", default=os.path.join(ROOT, "build", "gmmdiff"), help="the gmmdiff binary")
    p.add_argument("--backend", default="auto", help="gmmdiff --backend (cpu | cuda | auto)")
    p.add_argument("--path", default="auto",
                   help="gmmdiff --path list, e.g. auto or auto,products; the ratios use the first")
    p.add_argument("--n", type=int_list, default=[100000, 1000000])
    p.add_argument("--d", type=int_list, default=[64])
    p.add_argument("--K", type=int_list, default=[8, 16, 32, 64])
    p.add_argument("--T", type=int, default=64,
                   help="schedule length (64: no identity step, which gmmdiff skips and the peers compute)")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--peers", default="numpy,torch", help="numpy, torch (eager and compile)")
    p.add_argument("--torch-device", default="auto", help="auto (cuda when available) | cpu | cuda")
    p.add_argument("--torch-variants", default="eager,compile",
                   help="eager, compile: torch.compile costs tens of seconds a configuration (scripts/device.sh "
                        "runs it on a part of the grid only)")
    p.add_argument("--python", default=sys.executable, help="Python for the peers (needs NumPy; PyTorch for torch)")
    p.add_argument("--out", default=None,
                   help="results JSON, or a folder to write <date>-<host>.json in (default bench/results/)")
    p.add_argument("--plot", action="store_true", help="also draw the plots (bench/plot_bench.py) beside --out")
    args = p.parse_args()

    host = platform.node() or "host"
    now = datetime.datetime.now(datetime.timezone.utc)
    default_name = "%s-%s.json" % (now.strftime("%Y-%m-%d"), host)
    out = args.out or os.path.join(HERE, "results", default_name)
    if os.path.isdir(out) or out.endswith("/"):  # a folder (scripts/device.sh passes $OUT)
        out = os.path.join(out, default_name)
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    load_before = os.getloadavg()
    lists = lambda v: ",".join(str(x) for x in v)

    # 1. gmmdiff on the whole grid (each configuration checked against the CPU oracle first).
    with tempfile.TemporaryDirectory() as tmp:
        bench_json = os.path.join(tmp, "bench.json")
        cmd = [args.gmmdiff, "bench", "--backend", args.backend, "--n", lists(args.n), "--d", lists(args.d),
               "--K", lists(args.K), "--precision", "fp32", "--path", args.path, "--T", str(args.T),
               "--repeats", str(args.repeats), "--warmup", str(args.warmup), "--json", bench_json]
        r = subprocess.run(cmd, text=True, stdout=subprocess.PIPE)
        print(r.stdout, end="", file=sys.stderr)
        if not os.path.exists(bench_json):
            sys.exit("run_peers: gmmdiff bench failed (exit %d)" % r.returncode)
        with open(bench_json) as f:
            gm = json.load(f)
    commands = {"gmmdiff": " ".join(shlex.quote(c) for c in cmd)}

    # 2. the peers, one process per configuration.
    peers = []
    peer_cmds = []
    for n in args.n:
        for d in args.d:
            for K in args.K:
                common = ["--n", str(n), "--d", str(d), "--K", str(K), "--T", str(args.T),
                          "--repeats", str(args.repeats), "--warmup", str(args.warmup)]
                for peer in args.peers.split(","):
                    script = os.path.join(HERE, "peers", "%s_peer.py" % peer)
                    cmd = [args.python, script] + common
                    if peer == "torch":
                        cmd += ["--device", args.torch_device, "--variants", args.torch_variants]
                    peer_cmds.append(" ".join(shlex.quote(c) for c in cmd))
                    try:
                        t0 = cpu_ticks()
                        res = run(cmd, cwd=os.path.join(HERE, "peers"))
                        steal = steal_percent(t0, cpu_ticks())
                    except subprocess.CalledProcessError as e:
                        peers.append({"peer": peer, "variant": "?", "status": "error", "reason": str(e),
                                      "n": n, "d": d, "K": K})
                        continue
                    for line in res.stdout.splitlines():
                        if line.strip().startswith("{"):
                            rec = json.loads(line)
                            rec.setdefault("status", "ok")
                            rec["pct_steal_process"] = steal  # the whole peer process, warm-up included
                            peers.append(rec)
    commands["peers"] = peer_cmds

    # 3. ratios, gmmdiff / peer, per configuration, with gmmdiff on the first path of --path.
    first_path = args.path.split(",")[0]

    def gm_rate(n, d, K):
        for x in gm["results"]:
            if (x["n"], x["d"], x["K"], x["precision"], x["path"]) == (n, d, K, "fp32", first_path) and x["status"] == "ok":
                return x["elt_steps_per_s"], x["path_taken"], x.get("pct_steal")
        return None, None, None

    variants = []
    for rec in peers:
        name = rec["peer"] if rec["peer"] == "numpy" else "torch-" + rec.get("variant", "?")
        if name not in variants:
            variants.append(name)
    ratios = []
    for n in args.n:
        for d in args.d:
            for K in args.K:
                g, taken, g_steal = gm_rate(n, d, K)
                row = {"n": n, "d": d, "K": K, "gmmdiff_elt_steps_per_s": g, "gmmdiff_path": taken,
                       "gmmdiff_pct_steal": g_steal, "peers": {}}
                for rec in peers:
                    if (rec.get("n"), rec.get("d"), rec.get("K")) != (n, d, K):
                        continue
                    name = rec["peer"] if rec["peer"] == "numpy" else "torch-" + rec.get("variant", "?")
                    rate = rec.get("elt_steps_per_s") if rec.get("status") == "ok" else None
                    row["peers"][name] = {"elt_steps_per_s": rate, "device": rec.get("device"),
                                          "ratio": (g / rate) if (g and rate) else None,
                                          "status": rec.get("status"), "reason": rec.get("reason"),
                                          "pct_steal": rec.get("pct_steal_process")}
                ratios.append(row)

    # 4. the table.
    head = "%9s %5s %5s %-22s" % ("n", "d", "K", "gmmdiff elt-steps/s")
    for v in variants:
        head += " %-26s" % (v + " (ratio)")
    head += " %%steal (gmmdiff; %s)" % ", ".join(variants)
    print(head)
    fmt_steal = lambda x: "-" if x is None else "%.1f" % x
    for row in ratios:
        g = row["gmmdiff_elt_steps_per_s"]
        line = "%9d %5d %5d %-22s" % (row["n"], row["d"], row["K"],
                                       ("%.3g (%s)" % (g, row["gmmdiff_path"])) if g else "FAILED")
        for v in variants:
            x = row["peers"].get(v)
            if x is None:
                cell = "-"
            elif x["elt_steps_per_s"] is None:
                cell = x.get("status") or "-"
            else:
                cell = "%.3g (%.1fx)" % (x["elt_steps_per_s"], x["ratio"]) if x["ratio"] else "%.3g" % x["elt_steps_per_s"]
            line += " %-26s" % cell
        line += " " + "; ".join([fmt_steal(row["gmmdiff_pct_steal"])] +
                                [fmt_steal((row["peers"].get(v) or {}).get("pct_steal")) for v in variants])
        print(line)

    doc = {"date": now.strftime("%Y-%m-%dT%H:%M:%SZ"), "host": host, "cpu_model": gm.get("cpu_model"),
           "device": gm.get("device"), "backend": gm.get("backend"),
           "load_average_before": load_before, "load_average_after": os.getloadavg(),
           "command": " ".join(shlex.quote(c) for c in sys.argv), "commands": commands,
           "gmmdiff": gm, "peers": peers, "ratios": ratios}
    tmp_out = out + ".tmp.%d" % os.getpid()
    with open(tmp_out, "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
    os.replace(tmp_out, out)
    print("run_peers: wrote %s (load average %.2f before, %.2f after)" % (out, load_before[0], doc["load_average_after"][0]),
          file=sys.stderr)
    if args.plot:
        subprocess.run([args.python, os.path.join(HERE, "plot_bench.py"), out], check=True)


if __name__ == "__main__":
    main()
