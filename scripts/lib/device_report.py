#!/usr/bin/env python3
"""Helpers of scripts/device.sh (standard library only): turn what the device run produced into
JSON, and assemble device.json, the one file with every figure of the run.

  device_report.py ptxas BUILD_LOG                 -> JSON list: one entry per kernel instantiation
  device_report.py sass SASS_FILE                  -> JSON: the fused kernel's loop over components
  device_report.py gtest GTEST_JSON                -> JSON: counts, failures, recorded properties
  device_report.py sanitizer LOG                   -> JSON: the tool's error summary
  device_report.py peers GRID_JSON COMPILE_JSON     -> JSON: both run_peers results and their ratios
  device_report.py assemble WORK OUT_JSON          -> device.json from the pieces in WORK
  device_report.py summary DEVICE_JSON             -> the short summary printed at the end
"""
import collections
import json
import os
import re
import subprocess
import sys


def demangle(names):
    try:
        r = subprocess.run(["c++filt"], input="\n".join(names), text=True, capture_output=True, check=True)
        return r.stdout.splitlines()
    except (OSError, subprocess.CalledProcessError):
        return names


def short_kernel(name):
    """'void gmmdiff::gpu::(anonymous namespace)::fused_steps_kernel<float, 8, 1, false, true>(...)' ->
    'fused_steps_kernel<float, 8, 1, false, true>'."""
    name = re.sub(r"^void ", "", name)
    name = re.sub(r"gmmdiff::gpu::\(anonymous namespace\)::", "", name)
    depth, out = 0, []
    for ch in name:  # drop the parameter list
        if ch == "(" and depth == 0:
            break
        depth += ch == "<"
        depth -= ch == ">"
        out.append(ch)
    return "".join(out)


def ptxas(log_path):
    """ptxas -v lines: 'Compiling entry function 'X' for 'sm_90'', then stack/spill and registers."""
    entries, cur = [], None
    with open(log_path, errors="replace") as f:
        for line in f:
            m = re.search(r"Compiling entry function '(\S+)' for '(\w+)'", line)
            if m:
                cur = {"mangled": m.group(1), "arch": m.group(2)}
                continue
            if cur is None:
                continue
            m = re.search(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads", line)
            if m:
                cur["stack_bytes"], cur["spill_store_bytes"], cur["spill_load_bytes"] = map(int, m.groups())
                continue
            m = re.search(r"Used (\d+) registers", line)
            if m:
                cur["registers"] = int(m.group(1))
                m2 = re.search(r"(\d+) bytes smem", line)
                cur["static_smem_bytes"] = int(m2.group(1)) if m2 else 0
                entries.append(cur)
                cur = None
    seen, out = set(), []
    for e, name in zip(entries, demangle([e["mangled"] for e in entries])):
        key = (e["mangled"], e["arch"])
        if key in seen:
            continue
        seen.add(key)
        e["kernel"] = short_kernel(name)
        del e["mangled"]
        out.append(e)
    return sorted(out, key=lambda e: e["kernel"])


def sass(path):
    """The fused kernel's loop over components in SASS (cuobjdump -sass): for each instantiation,
    the backward-branch loops that hold both a shuffle (the group sum) and an exp (MUFU.EX2), with
    their instruction counts by opcode. docs/cuda.md's FP32 ceiling is FFMA / all instructions of
    that loop, per lane and component."""
    funcs, cur, lines = {}, None, []
    with open(path, errors="replace") as f:
        for line in f:
            m = re.search(r"Function : (\S+)", line)
            if m:
                if cur:
                    funcs[cur] = lines
                cur, lines = m.group(1), []
                continue
            if cur:
                lines.append(line.rstrip("\n"))
    if cur:
        funcs[cur] = lines
    names = list(funcs)
    out = {}
    for mangled, name in zip(names, demangle(names)):
        if "fused_steps_kernel" not in name:
            continue
        body = funcs[mangled]
        instrs, labels = [], {}
        for line in body:
            m = re.match(r"^\s*(\.L_x_\d+):", line)
            if m:
                labels[m.group(1)] = len(instrs)
                continue
            m = re.match(r"^\s*/\*[0-9a-f]+\*/\s+(.*?);", line)
            if m:
                instrs.append(m.group(1).strip())
        loops = []
        for i, ins in enumerate(instrs):
            m = re.search(r"\bBRA\b.*\((\.L_x_\d+)\)", ins)
            if m and m.group(1) in labels and labels[m.group(1)] <= i:
                seg = instrs[labels[m.group(1)]:i + 1]
                ops = collections.Counter()
                for s in seg:
                    s = re.sub(r"^@!?U?P\w+\s+", "", s)
                    ops[s.split()[0]] += 1
                if any(o.startswith("SHFL") for o in ops) and any(o.startswith("MUFU.EX2") for o in ops):
                    ffma = sum(c for o, c in ops.items() if o.startswith("FFMA") or o.startswith("DFMA"))
                    total = sum(ops.values())
                    loops.append({"instructions": total, "fma": ffma, "fma_fraction": round(ffma / total, 4),
                                  "by_opcode": dict(ops.most_common())})
        if loops:
            out[short_kernel(name)] = loops
    return out


def gtest(path):
    with open(path) as f:
        j = json.load(f)
    res = {"tests": j.get("tests", 0), "failures": j.get("failures", 0), "errors": j.get("errors", 0),
           "disabled": j.get("disabled", 0), "seconds": j.get("time"), "skipped": 0, "failed": [], "properties": {}}
    for suite in j.get("testsuites", []):
        for t in suite.get("testsuite", []):
            name = "%s.%s" % (suite["name"], t["name"])
            if t.get("result") == "SKIPPED":
                res["skipped"] += 1
            if t.get("failures"):
                res["failed"].append({"test": name, "message": t["failures"][0].get("failure", "")[:2000]})
            for k, v in t.items():  # RecordProperty values
                if k not in ("name", "file", "line", "status", "result", "timestamp", "time", "classname",
                             "failures", "value_param", "type_param"):
                    res["properties"]["%s/%s" % (name, k)] = v
    return res


def sanitizer(path):
    text = open(path, errors="replace").read() if os.path.exists(path) else ""
    m = re.search(r"ERROR SUMMARY: (\d+) error", text)
    return {"error_summary": int(m.group(1)) if m else None,
            "refused": bool(re.search(r"Device not supported|not supported on this platform", text)),
            "tail": text[-1500:]}


def peers(grid_path, compile_path):
    grid, comp = read_json(grid_path), read_json(compile_path)
    return {"grid_vs_torch_eager": grid, "torch_compile": comp,
            "ratios": (grid or {}).get("ratios", []) + (comp or {}).get("ratios", [])}


def read_json(path, default=None):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return default


def assemble(work, out_path):
    doc = {"tool": "scripts/device.sh", "stages": []}
    env = read_json(os.path.join(work, "env.json"), {})
    doc.update(env)
    doc["figures_are"] = ("measured in this run on the GPU named above" if env.get("gpu") else
                          "from a machine without a GPU: the build and the host-side tests only")
    stages_path = os.path.join(work, "stages.tsv")
    if os.path.exists(stages_path):
        for line in open(stages_path):
            name, status, seconds, note = (line.rstrip("\n").split("\t") + ["", "", "", ""])[:4]
            doc["stages"].append({"stage": name, "status": status, "seconds": int(seconds or 0), "note": note})
    for key, fname in [("info", "info.json"), ("ptxas", "ptxas.json"), ("sass_fused_loop", "sass.json"),
                       ("gpu_tests", "gtest.json"), ("oom", "oom.json"), ("bench", "peers.json")]:
        v = read_json(os.path.join(work, fname))
        if v is not None:
            doc[key] = v
    san = {}
    for tool in ("memcheck", "racecheck", "initcheck"):
        v = read_json(os.path.join(work, "sanitizer-%s.json" % tool))
        if v is not None:
            san[tool] = v
    if san:
        doc["sanitizer"] = san
    with open(out_path, "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")


def summary(path):
    d = read_json(path, {})
    lines = ["device.sh: %s, %s" % (d.get("gpu") or "no GPU", d.get("date", ""))]
    for s in d.get("stages", []):
        lines.append("  %-10s %-8s %4ss  %s" % (s["stage"], s["status"], s["seconds"], s["note"]))
    t = d.get("gpu_tests")
    if t:
        lines.append("  gpu tests: %d run, %d failed, %d skipped" % (t["tests"], t["failures"], t["skipped"]))
        for f in t["failed"][:10]:
            lines.append("    FAILED %s" % f["test"])
    for tool, v in d.get("sanitizer", {}).items():
        lines.append("  compute-sanitizer %s: %s" % (tool, "refused by the device" if v["refused"] else
                                                     "%s errors" % v["error_summary"]))
    o = d.get("oom")
    if o:
        lines.append("  oom retry: %s" % json.dumps(o.get("verdicts", o)))
    sl = d.get("sass_fused_loop")
    if sl:
        for k in sorted(sl)[:6]:
            lp = sl[k][0]
            lines.append("  SASS %s: %d instructions a component, %d FMA (%.0f%%)" %
                         (k, lp["instructions"], lp["fma"], 100 * lp["fma_fraction"]))
    b = d.get("bench")
    if b:
        for r in b.get("ratios", [])[:20]:
            lines.append("  bench " + json.dumps(r))
    print("\n".join(lines))


def main():
    cmd = sys.argv[1]
    if cmd == "ptxas":
        print(json.dumps(ptxas(sys.argv[2]), indent=1))
    elif cmd == "sass":
        print(json.dumps(sass(sys.argv[2]), indent=1))
    elif cmd == "gtest":
        print(json.dumps(gtest(sys.argv[2]), indent=1))
    elif cmd == "sanitizer":
        print(json.dumps(sanitizer(sys.argv[2]), indent=1))
    elif cmd == "peers":
        print(json.dumps(peers(sys.argv[2], sys.argv[3])))
    elif cmd == "assemble":
        assemble(sys.argv[2], sys.argv[3])
    elif cmd == "summary":
        summary(sys.argv[2])
    else:
        sys.exit("device_report.py: unknown command %s" % cmd)


if __name__ == "__main__":
    main()
