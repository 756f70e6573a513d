"""The arithmetic of ops/bench/run.sh, kept out of the shell script.

  report.py median OUT RUN.json...   the run with the median req/s, and every run
  report.py pair A.json B.json       two loads at once as one: req/s add up,
                                     the worse p50/p99 counts
  report.py rss PID...               KiB of RSS of the PIDs and all their
                                     descendants, and how many processes
  report.py report DIR JSON_OUT      the table, the ratios and the JSON file
  report.py check JSON               exits 1 unless the JSON has every key and
                                     every fazt target served with no error
"""
import glob
import json
import os
import sys

# Scenario -> its targets, in the order the table prints them.
SCENARIOS = {
    "js_hello": ["bare", "node", "workerd_x1", "workerd_x2", "fazt"],
    "static_4k": ["bare", "node", "fazt"],
    "kv": ["node", "fazt"],
}
SCENARIO_NAMES = {"js_hello": "JS hello", "static_4k": "static 4 KiB", "kv": "kv read+write"}
TARGET_NAMES = {
    "bare": "bare hyper",
    "node": "Node cluster x2",
    "workerd_x1": "workerd x1",
    "workerd_x2": "workerd x2",
    "fazt": "fazt",
}
# Servers whose memory is measured (run.sh writes mem/<name>.json).
SERVERS = ["bare", "bare_4k", "node", "workerd_x1", "workerd_x2", "fazt"]
RESULT_KEYS = ["requests", "rps", "p50_us", "p99_us", "bad_status", "errors"]
TOP_KEYS = ["machine", "settings", "fazt", "results", "skipped", "memory_kib", "ratios"]


def median(out, paths):
    runs = [json.load(open(p)) for p in paths]
    ordered = sorted(runs, key=lambda r: r["rps"])
    json.dump({"median": ordered[len(ordered) // 2], "runs": runs}, open(out, "w"))


def pair(a_path, b_path):
    a, b = (json.load(open(p)) for p in (a_path, b_path))
    print(json.dumps({
        "requests": a["requests"] + b["requests"],
        "rps": a["rps"] + b["rps"],
        "p50_us": max(a["p50_us"], b["p50_us"]),
        "p99_us": max(a["p99_us"], b["p99_us"]),
        "bad_status": a["bad_status"] + b["bad_status"],
        "errors": a["errors"] + b["errors"],
        "connections": a["connections"] + b["connections"],
        "seconds": a["seconds"],
    }))


def rss(pids):
    # Parent of every process; the name in /proc/PID/stat may hold spaces
    # and parentheses, so split after its last ')'.
    parent = {}
    for stat in glob.glob("/proc/[0-9]*/stat"):
        try:
            fields = open(stat).read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parent[int(stat.split("/")[2])] = int(fields[1])
    tree, todo = set(), [int(p) for p in pids]
    while todo:
        pid = todo.pop()
        if pid in tree:
            continue
        tree.add(pid)
        todo.extend(child for child, ppid in parent.items() if ppid == pid)
    kib = 0
    for pid in tree:
        try:
            for line in open(f"/proc/{pid}/status"):
                if line.startswith("VmRSS:"):
                    kib += int(line.split()[1])
        except OSError:
            pass
    print(json.dumps({"kib": kib, "processes": len(tree)}))


def load_dir(d, sub):
    out = {}
    for path in glob.glob(os.path.join(d, sub, "*.json")):
        out[os.path.basename(path)[:-5]] = json.load(open(path))
    return out


def report(d, json_out):
    meta = json.load(open(os.path.join(d, "meta.json")))
    skipped = json.load(open(os.path.join(d, "skipped.json")))
    found = load_dir(d, "results")
    results = {s: {t: found.get(f"{s}.{t}") for t in targets} for s, targets in SCENARIOS.items()}
    mem = load_dir(d, "mem")
    memory = {name: mem.get(name) for name in SERVERS}

    def rps(s, t):
        r = results[s][t]
        return r["median"]["rps"] if r else None

    def ratio(a, b):
        return round(a / b, 3) if a is not None and b else None

    fazt_js = results["js_hello"]["fazt"]
    ratios = {
        "fazt_js_per_workerd_x2": ratio(rps("js_hello", "fazt"), rps("js_hello", "workerd_x2")),
        "fazt_js_p99_ms": fazt_js["median"]["p99_us"] / 1000 if fazt_js else None,
        "fazt_js_per_workerd_x1": ratio(rps("js_hello", "fazt"), rps("js_hello", "workerd_x1")),
        "fazt_js_per_node": ratio(rps("js_hello", "fazt"), rps("js_hello", "node")),
        "fazt_js_per_bare": ratio(rps("js_hello", "fazt"), rps("js_hello", "bare")),
        "fazt_static_per_bare": ratio(rps("static_4k", "fazt"), rps("static_4k", "bare")),
        "fazt_static_per_node": ratio(rps("static_4k", "fazt"), rps("static_4k", "node")),
        "fazt_kv_per_node": ratio(rps("kv", "fazt"), rps("kv", "node")),
    }
    doc = dict(meta, results=results, skipped=skipped, memory_kib=memory, ratios=ratios)
    os.makedirs(os.path.dirname(os.path.abspath(json_out)), exist_ok=True)
    with open(json_out, "w") as f:
        json.dump(doc, f, indent=2)
        f.write("\n")

    s = meta["settings"]
    print(f"machine: {meta['machine']['cores']} cores; {s['connections']} connections; "
          f"{s['seconds']} s per run after {s['warmup']} s warm-up; median of {s['runs']}")
    print(f"fazt: {meta['fazt']['path']} ({meta['fazt']['version']}, sha256 {meta['fazt']['sha256'][:12]})"
          + ("  [FAZT_BIN]" if meta["fazt"]["from_env"] else ""))
    print()
    print(f"{'scenario':14}{'target':17}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'bad':>7}{'errors':>8}")
    for sc, targets in SCENARIOS.items():
        for t in targets:
            r = results[sc][t]
            head = f"{SCENARIO_NAMES[sc]:14}{TARGET_NAMES[t]:17}"
            if r is None:
                print(f"{head}skipped ({skipped.get(f'{sc}.{t}', 'not run')})")
                continue
            m = r["median"]
            print(f"{head}{m['rps']:>10.0f}{m['p50_us'] / 1000:>9.2f}{m['p99_us'] / 1000:>9.2f}"
                  f"{m['bad_status']:>7}{m['errors']:>8}")
    print()
    print(f"{'memory (RSS)':31}{'idle MiB':>10}{'loaded MiB':>12}{'processes':>11}")
    names = {"bare": "bare hyper", "bare_4k": "bare hyper (4 KiB)", "node": "Node cluster x2",
             "workerd_x1": "workerd x1", "workerd_x2": "workerd x2", "fazt": "fazt (supervisor + children)"}
    for name in SERVERS:
        m = memory[name]
        if m is None:
            print(f"{names[name]:31}skipped")
            continue
        print(f"{names[name]:31}{m['idle']['kib'] / 1024:>10.1f}{m['after_load']['kib'] / 1024:>12.1f}"
              f"{m['after_load']['processes']:>11}")
    print()

    def line(label, value, note=""):
        shown = f"{value:.2f}" if value is not None else "n/a"
        print(f"{label:30}{shown:>6}  {note}".rstrip())

    r, p99 = ratios["fazt_js_per_workerd_x2"], ratios["fazt_js_p99_ms"]
    goal = "" if r is None else ("met" if r >= 1.0 and p99 <= 10 else "not met")
    line("ratio fazt JS / workerd x2", r, f"(goal >= 1.0 with p99 <= 10 ms: p99 {p99:.2f} ms; {goal})"
         if r is not None else "")
    line("ratio fazt JS / workerd x1", ratios["fazt_js_per_workerd_x1"])
    line("ratio fazt JS / Node", ratios["fazt_js_per_node"], "(stretch >= 1.0)")
    line("ratio fazt JS / bare", ratios["fazt_js_per_bare"], "(target >= 0.5)")
    line("ratio fazt static / bare", ratios["fazt_static_per_bare"], "(target >= 0.8)")
    line("ratio fazt static / Node", ratios["fazt_static_per_node"])
    line("ratio fazt kv / Node+SQLite", ratios["fazt_kv_per_node"])
    print(f"\nJSON written to {json_out}")


def check(path):
    problems = []
    try:
        doc = json.load(open(path))
    except (OSError, ValueError) as e:
        print(f"check: no JSON at {path}: {e}", file=sys.stderr)
        sys.exit(1)
    problems += [f"missing key {k}" for k in TOP_KEYS if k not in doc]
    for sc, targets in SCENARIOS.items():
        for t in targets:
            r = doc.get("results", {}).get(sc, {}).get(t, "absent")
            if r == "absent":
                problems.append(f"missing results.{sc}.{t}")
            elif r is None:
                if t == "fazt":
                    problems.append(f"fazt {sc} was not measured")
            else:
                m = r.get("median", {})
                missing = [k for k in RESULT_KEYS if k not in m]
                if missing:
                    problems.append(f"results.{sc}.{t} lacks {missing}")
                elif m["requests"] < 1:
                    problems.append(f"{t} {sc} served no request")
                elif t == "fazt" and (m["errors"] or m["bad_status"]):
                    problems.append(f"fazt {sc}: {m['errors']} errors, {m['bad_status']} bad statuses")
    for name in SERVERS:
        if name not in doc.get("memory_kib", {}):
            problems.append(f"missing memory_kib.{name}")
    fazt_mem = doc.get("memory_kib", {}).get("fazt")
    if not fazt_mem or fazt_mem["idle"]["kib"] <= 0 or fazt_mem["after_load"]["kib"] <= 0:
        problems.append("fazt's memory was not measured")
    for p in problems:
        print(f"check: {p}", file=sys.stderr)
    if problems:
        sys.exit(1)
    print(f"check: {path} has every key; fazt served every scenario with no error", file=sys.stderr)


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "median":
        median(args[0], args[1:])
    elif cmd == "pair":
        pair(*args)
    elif cmd == "rss":
        rss(args)
    elif cmd == "report":
        report(*args)
    elif cmd == "check":
        check(*args)
    else:
        sys.exit(f"unknown command {cmd}")
