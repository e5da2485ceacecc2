"""Turns compare.sh's result lines (OUT/results.txt) into the Markdown table and, with gnuplot, OUT/compare.png."""
import os
import shutil
import subprocess
import sys

out = sys.argv[1]
results = {}
with open(os.path.join(out, "results.txt")) as f:
    for line in f:
        fields = dict(kv.split("=", 1) for kv in line.split()[1:] if "=" in kv)
        broker, scenario = fields["label"].split("/", 1)
        results[(broker, scenario)] = fields

TITLES = {
    "fanout-100": "fan-out 1 → 100, 128 B, unpaced",
    "fanout-1000": "fan-out 1 → 1000, 128 B, unpaced",
    "paced": "paced 2,000 msg/s × 10 subscribers, 128 B",
    "size-4k": "4 KiB, 1 → 10, unpaced",
    "size-64k": "64 KiB, 1 → 10, unpaced",
    "queue": "queue 4 → 4 competing, client-individual acks",
    "idle": "idle subscribed WebSocket connections, no heart-beats",
    "idle-hb": "idle subscribed WebSocket connections, heart-beats 10 s both ways",
    "hold": "idle connections held (Broker only), no heart-beats",
    "hold-hb": "idle connections held (Broker only), heart-beats 10 s both ways",
}
IDLE = ("idle", "idle-hb", "hold", "hold-hb")


def num(fields, key):
    try:
        return float(fields[key])
    except (KeyError, ValueError, TypeError):
        return float("nan")


def fmt(value, digits=0):
    if value != value:
        return "–"
    return f"{value:,.{digits}f}"


def ratio(a, b, digits=2):
    if a != a or b != b or b == 0:
        return "–"
    return f"{a / b:.{digits}f}×"


def delivered(fields):
    if fields is None:
        return "–"
    ok = "" if fields.get("exit") == "0" else " ⚠"
    if "held" in fields:
        return f"{int(fields['held']):,}/{int(fields['connections']):,} held{ok}"
    cpu = num(fields, "client_cpu")
    load = "" if cpu != cpu else f" (load tool CPU {cpu * 100:.0f} %)"
    return f"{int(fields['delivered']):,}/{int(fields['expected']):,}{ok}{load}"


rows = ["| scenario | measure | Broker | RabbitMQ Web-STOMP | Broker ÷ RabbitMQ | goal |", "|---|---|--:|--:|--:|---|"]
plot = []
order = [s for s in TITLES if any(k[1] == s for k in results)]
for scenario in order:
    b = results.get(("broker", scenario))
    r = results.get(("rabbitmq", scenario))
    title = TITLES[scenario]
    if scenario in IDLE:
        bk, rk = num(b or {}, "kib_per_connection"), num(r or {}, "kib_per_connection")
        goal = "≤ 0.1× (1/10)" if scenario.startswith("idle") else "50,000 held"
        rows.append(f"| {title} | KiB per connection (server RSS growth) | {fmt(bk, 1)} | {fmt(rk, 1)} | {ratio(bk, rk, 3)} | {goal} |")
        if "server_cpu_net_pct" in (b or {}) or "server_cpu_net_pct" in (r or {}):
            bc, rc = num(b or {}, "server_cpu_net_pct"), num(r or {}, "server_cpu_net_pct")
            rows.append(f"| | server CPU % of a core, above its idle baseline | {fmt(bc, 2)} | {fmt(rc, 2)} | {ratio(bc, rc)} | {'≤ 1×' if scenario.startswith('idle') else ''} |")
            rows.append(f"| | idle baseline / held, % of a core | {fmt(num(b or {}, 'server_cpu_baseline_pct'), 2)} / {fmt(num(b or {}, 'server_cpu_held_pct'), 2)} | {fmt(num(r or {}, 'server_cpu_baseline_pct'), 2)} / {fmt(num(r or {}, 'server_cpu_held_pct'), 2)} | | |")
            if scenario.endswith("-hb"):
                rows.append(f"| | heart-beats in / out during the window | {fmt(num(b or {}, 'heartbeats_in'))} / {fmt(num(b or {}, 'heartbeats_out'))} | {fmt(num(r or {}, 'heartbeats_in'))} / {fmt(num(r or {}, 'heartbeats_out'))} | | |")
        rows.append(f"| | connections held | {delivered(b)} | {delivered(r)} | | |")
        continue
    bd, rd = num(b or {}, "deliveries_per_s"), num(r or {}, "deliveries_per_s")
    if scenario == "paced":
        for key, label in (("p50_ms", "latency p50 ms"), ("p99_ms", "latency p99 ms"), ("p999_ms", "latency p99.9 ms"), ("max_ms", "latency max ms")):
            goal = "≤ 0.5×" if key == "p99_ms" else ""
            rows.append(f"| {title if key == 'p50_ms' else ''} | {label} | {fmt(num(b or {}, key), 2)} | {fmt(num(r or {}, key), 2)} | {ratio(num(b or {}, key), num(r or {}, key))} | {goal} |")
    else:
        goal = "≥ 10×" if scenario.startswith("fanout") else ""
        rows.append(f"| {title} | deliveries/s | {fmt(bd)} | {fmt(rd)} | {ratio(bd, rd, 1)} | {goal} |")
        rows.append(f"| | latency p50 / p99 ms | {fmt(num(b or {}, 'p50_ms'), 1)} / {fmt(num(b or {}, 'p99_ms'), 1)} | {fmt(num(r or {}, 'p50_ms'), 1)} / {fmt(num(r or {}, 'p99_ms'), 1)} | | |")
    rows.append(f"| | delivered / expected | {delivered(b)} | {delivered(r)} | | |")
    plot.append((scenario, bd, rd, num(b or {}, "p99_ms"), num(r or {}, "p99_ms")))

machine = open(os.path.join(out, "machine.txt")).read().strip()
print("\n".join(machine.splitlines()))
print()
print("\n".join(rows))

if plot and shutil.which("gnuplot"):
    dat = os.path.join(out, "compare.dat")
    with open(dat, "w") as f:
        for scenario, bd, rd, bp, rp in plot:
            f.write(f"{scenario} {bd} {rd} {bp} {rp}\n")
    png = os.path.join(out, "compare.png")
    script = f"""
set terminal pngcairo size 1200,480 font ',10' noenhanced
set output '{png}'
set multiplot layout 1,2
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set logscale y
set grid ytics
set xtics rotate by -20
set key top right
set title 'deliveries/s (log scale; higher is better)'
plot '{dat}' using 2:xtic(1) title 'Broker' lc rgb '#2b6cb0', '' using 3 title 'RabbitMQ Web-STOMP' lc rgb '#dd6b20'
set title 'latency p99, ms (log scale; lower is better)'
plot '{dat}' using 4:xtic(1) title 'Broker' lc rgb '#2b6cb0', '' using 5 title 'RabbitMQ Web-STOMP' lc rgb '#dd6b20'
unset multiplot
"""
    subprocess.run(["gnuplot"], input=script, text=True, check=False)
    print(f"\n(plot: {png})", file=sys.stderr)
