#!/usr/bin/env python3
"""bench/report.py — merges the driver's JSON into bench/results/<date>-<commit>-n<N>.json,
prints the Markdown summary, and (`--plot DIR`) redraws bench/results/scaling.svg from the newest
result per N. Standard library only."""

import argparse
import datetime
import glob
import json
import os
import platform
import sys


WRITES = ("create", "update", "patch", "delete", "deletecollection")


def machine():
    mem_kib = 0
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem_kib = int(line.split()[1])
    model = ""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    with open("/proc/loadavg") as f:
        load = f.read().split()[:3]
    return {
        "nproc": os.cpu_count(),
        "memory_gib": round(mem_kib / 1024 / 1024, 1),
        "kernel": platform.release(),
        "cpu": model,
        "loadavg_at_end": [float(x) for x in load],
    }


def ratio(a, b):
    return round(a / b, 2) if b else None


def top(requests, k=8):
    items = sorted(requests.items(), key=lambda kv: -kv[1])[:k]
    return ", ".join(f"{n} {v}" for v, n in items) or "none"


def markdown(r):
    m = r["machine"]
    n = (r.get("provider") or r.get("bootstrap"))["n"]
    lines = [
        f"## k0smotron-rs scale benchmark, N = {n}",
        "",
        f"{r['date']} · commit {r['commit']}{' (dirty)' if r['dirty'] else ''} · "
        f"{m['nproc']} CPUs, {m['memory_gib']} GiB, kernel {m['kernel']} · load at end {m['loadavg_at_end']}",
    ]
    if r.get("provider"):
        lines += controlplane_markdown(r)
    if r.get("bootstrap"):
        lines += bootstrap_markdown(r)
    return "\n".join(lines)


def bootstrap_markdown(r):
    b = r["bootstrap"]
    return [
        "",
        f"bootstrap provider: `{r['bootstrap_cmd']}`",
        "",
        f"| bootstrap: {b['n']} K0sWorkerConfigs | value |",
        "|---|---|",
        f"| per config, Machine created → dataSecretName (s): p50 / p99 / max | {b['latency_p50_s']} / **{b['latency_p99_s']}** / {b['latency_max_s']} |",
        f"| creates issued / every dataSecretName set (s) | {b['created_s']} / {b['all_data_s']} |",
        f"| settled ({b['quiet_s']} s without a provider write) (s) | "
        f"{b['settled_s'] if b['settled'] else 'not within %s' % b['settle_max_s']} |",
        f"| provider CPU (s) to all data / to settled | {b['cpu_s']} / {b['cpu_to_settled_s']} |",
        f"| provider peak RSS / RSS at end (MiB) | {b['peak_rss_mib']} / {b['rss_mib']} |",
        f"| provider requests to the management cluster | {sum(b['requests'].values())} ({b['writes']} writes) |",
        f"| bootstrap tokens in the workload cluster | {b['workload_tokens']} |",
        "",
        f"Bootstrap requests by the provider: {top(b['requests'], 12)}.",
    ] + (
        []
        if b["latency_p99_s"] < 1
        else ["", f"**Target missed: p99 {b['latency_p99_s']} s ≥ 1 s.**"]
    )


def controlplane_markdown(r):
    p, f = r["provider"], r["floor"]
    b, s, c = p["burst"], p["steady"], p["churn"]
    lines = [
        f"provider: `{r['provider_cmd']}`",
        "",
        "| burst | provider | floor | ratio |",
        "|---|---|---|---|",
        f"| all children present (s) | {b['children_s']} | {f['children_s']} | {r['ratios']['children']} |",
        f"| all pods Ready (s) | {b['ready_s']} | {f['ready_s']} | {r['ratios']['ready']} |",
        f"| children p50 / p99 (s) | {b['children_p50_s']} / {b['children_p99_s']} | {f['children_p50_s']} / {f['children_p99_s']} | |",
        f"| creates issued (s) | {b['created_s']} | {f['written_s']} (all {f['objects']} objects written) | |",
    ]
    bt, ft = b.get("to_children") or {}, f.get("to_children") or {}
    if bt and ft:
        # Where the machine's CPU went until all children were there (older files lack it).
        for key, label in (
            ("api_server_cpu_s", "to all children: kube-apiserver CPU (s)"),
            ("etcd_cpu_s", "to all children: etcd CPU (s)"),
            ("machine_cpu_s", "to all children: machine CPU (s)"),
            ("machine_busy_pct", "to all children: machine busy (% of all cores)"),
        ):
            lines.append(f"| {label} | {bt[key]} | {ft[key]} | {ratio(bt[key], ft[key])} |")
    lines += [
        "",
        "| figure | value |",
        "|---|---|",
        f"| burst: status observed / settled (s) | {b['status_observed_s']} / "
        f"{b['settled_s'] if b['settled'] else 'not within %s' % b['settle_max_s']} |",
        f"| burst: provider CPU (s) to all Ready / to settled | {b['cpu_s']} / {b['cpu_to_settled_s']} |",
        f"| burst: provider peak RSS (MiB) | {b['peak_rss_mib']} |",
        f"| burst: provider requests | {sum(b['requests'].values())} ({b['writes']} writes) |",
        f"| steady ({s['seconds']} s): provider writes (must be 0) | **{s['writes']}** |",
        f"| steady: changes the watches saw to StatefulSets, Services, Secrets, control planes | {s.get('object_changes', 'n/a')} |",
        f"| steady: provider requests / CPU-s per minute | {sum(s['requests'].values())} / {s['cpu_s_per_min']} |",
        f"| steady: settled RSS (MiB) | {s['settled_rss_mib']} |",
        f"| churn: {c['changed']} k0sConfig changes observed / rolled (s) | {c['change_observed_s']} / {c['change_rolled_s']} |",
        f"| churn: change writes / CPU-s | {c['change_writes']} / {c['change_cpu_s']} |",
        f"| churn: {c['deleted']} deletions finalized / children gone (s) | {c['delete_finalized_s']} / {c['delete_children_gone_s']} |",
        f"| churn: delete writes / CPU-s | {c['delete_writes']} / {c['delete_cpu_s']} |",
        f"| provider total CPU (s), RSS at end (MiB) | {p['provider_total_cpu_s']} / {c['rss_mib']} |",
        "",
        f"Burst requests by the provider: {top(b['requests'])}.",
        f"Steady requests: {top(s['requests'])}.",
        f"Captured for the floor: {p['captured_objects']} objects ({', '.join(f'{k} {v}' for k, v in p['captured_kinds'].items())}).",
    ]
    if s["writes"] != 0:
        lines.append("")
        writes = {k: v for k, v in s["requests"].items() if k.split(" ")[0] in WRITES}
        lines.append(f"**Target missed: {s['writes']} writes in steady state** ({top(writes)}).")
    return lines


def svg(points):
    """A hand-written log-log plot: seconds (children, floor, Ready) and MiB (peak, settled) vs N."""
    w, h, pad = 720, 360, 60
    ns = [p["n"] for p in points]
    series = [
        ("provider: all children (s)", "#1f77b4", [p["children_s"] for p in points]),
        ("floor: all children (s)", "#7f7f7f", [p["floor_children_s"] for p in points]),
        ("provider: all pods Ready (s)", "#2ca02c", [p["ready_s"] for p in points]),
        ("provider: peak RSS (MiB)", "#d62728", [p["peak_rss_mib"] for p in points]),
        ("provider: settled RSS (MiB)", "#ff7f0e", [p["settled_rss_mib"] for p in points]),
    ]
    import math

    ys = [y for _, _, v in series for y in v if y and y > 0]
    lo_y, hi_y = math.floor(math.log10(min(ys))), math.ceil(math.log10(max(ys)))
    lo_x, hi_x = math.floor(math.log10(min(ns))), math.ceil(math.log10(max(ns)))
    if hi_x == lo_x:
        hi_x += 1
    if hi_y == lo_y:
        hi_y += 1

    def x(v):
        return pad + (math.log10(v) - lo_x) / (hi_x - lo_x) * (w - 2 * pad - 180)

    def y(v):
        return h - pad - (math.log10(v) - lo_y) / (hi_y - lo_y) * (h - 2 * pad)

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">',
           f'<rect width="{w}" height="{h}" fill="white"/>',
           f'<text x="{pad}" y="20" font-size="14">k0smotron-rs benchmark: time and memory against N (log-log)</text>']
    for e in range(lo_x, hi_x + 1):
        out.append(f'<line x1="{x(10**e):.1f}" y1="{pad}" x2="{x(10**e):.1f}" y2="{h-pad}" stroke="#ddd"/>')
        out.append(f'<text x="{x(10**e):.1f}" y="{h-pad+16}" text-anchor="middle">{10**e}</text>')
    for e in range(lo_y, hi_y + 1):
        out.append(f'<line x1="{pad}" y1="{y(10**e):.1f}" x2="{w-pad-180}" y2="{y(10**e):.1f}" stroke="#ddd"/>')
        out.append(f'<text x="{pad-6}" y="{y(10**e)+4:.1f}" text-anchor="end">{10**e:g}</text>')
    out.append(f'<text x="{(w-180)/2:.0f}" y="{h-20}" text-anchor="middle">N (control planes)</text>')
    for i, (name, color, vals) in enumerate(series):
        pts = [(x(n), y(v)) for n, v in zip(ns, vals) if v and v > 0]
        if len(pts) > 1:
            out.append(f'<polyline fill="none" stroke="{color}" stroke-width="2" points="{" ".join(f"{a:.1f},{b:.1f}" for a, b in pts)}"/>')
        for a, b in pts:
            out.append(f'<circle cx="{a:.1f}" cy="{b:.1f}" r="3" fill="{color}"/>')
        ly = pad + 18 * i
        out.append(f'<rect x="{w-pad-170}" y="{ly-9}" width="10" height="10" fill="{color}"/>')
        out.append(f'<text x="{w-pad-155}" y="{ly}">{name}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def plot(results_dir):
    newest = {}
    for path in sorted(glob.glob(os.path.join(results_dir, "*.json"))):
        with open(path) as f:
            r = json.load(f)
        if not r.get("provider"):
            continue  # a bootstrap-only run
        flags = [a.split("=")[0] for a in r.get("provider_cmd", "").split() if a.startswith("--")]
        if set(flags) - {"--health-addr", "--metrics-addr"}:
            continue  # an experiment with non-default provider flags
        n = r["provider"]["n"]
        if n not in newest or r["date"] >= newest[n]["date"]:
            newest[n] = r
    points = [
        {
            "n": n,
            "children_s": r["provider"]["burst"]["children_s"],
            "floor_children_s": r["floor"]["children_s"],
            "ready_s": r["provider"]["burst"]["ready_s"],
            "peak_rss_mib": r["provider"]["burst"]["peak_rss_mib"],
            "settled_rss_mib": r["provider"]["steady"]["settled_rss_mib"],
        }
        for n, r in sorted(newest.items())
    ]
    if points:
        with open(os.path.join(results_dir, "scaling.svg"), "w") as f:
            f.write(svg(points))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--provider")
    ap.add_argument("--floor")
    ap.add_argument("--out")
    ap.add_argument("--commit", default="")
    ap.add_argument("--dirty", default="false")
    ap.add_argument("--provider-cmd", default="")
    ap.add_argument("--bootstrap", help="the driver's bootstrap JSON")
    ap.add_argument("--bootstrap-cmd", default="")
    ap.add_argument("--bench-seconds", type=int, default=0)
    ap.add_argument("--plot", help="only redraw DIR/scaling.svg from the results in DIR")
    a = ap.parse_args()
    if a.plot:
        plot(a.plot)
        return

    def load(path):
        if not path:
            return None
        with open(path) as f:
            return json.load(f)

    provider, floor, bootstrap = load(a.provider), load(a.floor), load(a.bootstrap)
    r = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "commit": a.commit,
        "dirty": a.dirty == "true",
        "provider_cmd": a.provider_cmd,
        "bench_seconds": a.bench_seconds,
        "machine": machine(),
        "phases": [p for p, v in (("controlplane", provider), ("bootstrap", bootstrap)) if v],
    }
    if provider:
        r["provider"] = provider
        r["floor"] = floor
        r["ratios"] = {
            "children": ratio(provider["burst"]["children_s"], floor["children_s"]),
            "ready": ratio(provider["burst"]["ready_s"], floor["ready_s"]),
        }
    if bootstrap:
        r["bootstrap"] = bootstrap
        r["bootstrap_cmd"] = a.bootstrap_cmd
    with open(a.out, "w") as f:
        json.dump(r, f, indent=2, sort_keys=True)
        f.write("\n")
    plot(os.path.dirname(a.out))
    print(markdown(r))


if __name__ == "__main__":
    sys.exit(main())
