"""Reads the result lines the compare-*.sh scripts collect (OUT/results.txt, by bench-lib.sh) for their tables."""
import os
import statistics


def load(out, key=lambda label: label):
    """The runs in OUT/results.txt, grouped by key(label): each run a dict of its key=value fields."""
    runs = {}
    with open(os.path.join(out, "results.txt")) as f:
        for line in f:
            fields = dict(kv.split("=", 1) for kv in line.split()[1:] if "=" in kv)
            runs.setdefault(key(fields["label"]), []).append(fields)
    return runs


def median(runs, group, field):
    """The median of FIELD over the runs of GROUP; NaN when there are none."""
    values = [float(f[field]) for f in runs.get(group, []) if f.get(field) not in (None, "")]
    return statistics.median(values) if values else float("nan")


def all_ok(runs, group):
    """True when GROUP has runs and every one exited 0."""
    fs = runs.get(group, [])
    return bool(fs) and all(f.get("exit") == "0" for f in fs)


def fmt(v, d=0):
    return "–" if v != v else f"{v:,.{d}f}"


def machine(out):
    with open(os.path.join(out, "machine.txt")) as f:
        return f.read().strip()
