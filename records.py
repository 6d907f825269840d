"""
What every results table is made of: the tables by name (`renders`), the committed run records they read, and the
cells their numbers become. tables.py holds the tables and report.py the pages they are rendered into; both use
what is here, and report.py imports tables.py (which fills RENDER), never the other way round.

    python -c "import records; print(records.cell({0: 85.9, 1: 86.1, 2: 85.8}))"

A record is a small JSON file committed under results/ (metrics.json, runner.json, a pipeline's results.json, a
report JSON), read by its path relative to the repository. A record a table needs and does not find raises
MissingRecord naming the path, so `python report.py --check` says what is missing; each record read is kept in
READ, where the page's machines table finds them.
"""
import os

from cli import DataError
from runs import mean_std, paired, pm, read_json, vs_base

HERE = os.path.dirname(os.path.abspath(__file__))  # the repository the pages and records are read from


class MissingRecord(DataError):
    """A table's record is not in the repository: the check names the path."""


RENDER = {}


def renders(name):
    def register(fn):
        RENDER[name] = fn
        return fn
    return register


READ = {}  # path -> record, of the page being rendered: what its machines table describes


def record(path):
    """A committed JSON record, path relative to the repository; MissingRecord where it is not there."""
    data = read_json(os.path.join(HERE, path))
    if data is None:
        raise MissingRecord(f"{path}: record missing")
    READ[path] = data
    return data


def optional_record(path):
    """A committed JSON record that a table may do without: None where it is not there. Not kept in READ: only the
    records a table cannot do without describe the page's machines."""
    return read_json(os.path.join(HERE, path))


def seeds_of(pattern, seeds=(0, 1, 2)):
    """{seed: metrics.json} of the run folders `pattern.format(s=seed)` that exist."""
    out = {}
    for s in seeds:
        path = os.path.join(pattern.format(s=s), "metrics.json")
        if os.path.exists(os.path.join(HERE, path)):
            out[s] = record(path)
    if not out:
        raise MissingRecord(f"{pattern.format(s='S')}/metrics.json: record missing")
    return out


def grid(folder, d):
    """{regimen: {seed: metrics}} of one D in a grid folder, every run read from its own metrics.json."""
    spec = record(f"{folder}/results.json")
    out = {r: {} for r in spec["regimens"]}
    for row in spec["runs"]:
        if row["d"] == d and row["status"] == "done":
            out[row["regimen"]][row["seed"]] = record(os.path.join(row["run_dir"], "metrics.json"))
    return out


def report_rows(pattern, rows, cells):
    """A table's rows, one a run whose runs are each optional, but not all: [row, *cells(report)] of each (row, name)
    whose report `pattern.format(name)` is committed; MissingRecord if none is."""
    found = []
    for row, name in rows:
        try:
            found.append([row, *cells(record(pattern.format(name)))])
        except MissingRecord:
            continue
    if not found:
        raise MissingRecord(f"{pattern.format('*')}: record missing")
    return found


# ---------------------------------------------------------------------------------------------
# Cells: the numbers of some runs as the text of one table cell

def f1s(runs, split="test"):
    """{seed: score in %}: span F1 (NER) or accuracy (classification) of each run."""
    key = lambda m: "accuracy" if m.get("task") == "classify" else "f1"  # noqa: E731
    return {s: 100 * m[split][key(m)] for s, m in runs.items()}


def cell(by_seed, digits=2, each=True):
    """'85.94 ± 0.16 (86.13, 85.83, 85.86)': mean ± std over seeds and, with `each`, every seed's value."""
    mean, std = mean_std(by_seed.values())
    text = pm(mean, std, digits=digits)
    if each and len(by_seed) > 1:
        text += " (" + ", ".join(f"{by_seed[s]:.{digits}f}" for s in sorted(by_seed)) + ")"
    return text


def versus(by_seed, base, digits=2):
    """A paired difference as a cell: '+1.57 ± 0.35 (3/3 better)', one seed: '+0.29'."""
    stats = paired(by_seed, base)
    if stats["paired"] == 1:
        return pm(stats["delta_mean"], signed=True, digits=digits)
    return vs_base(stats, digits)


def seeds_cell(by_seed):
    return ", ".join(str(s) for s in sorted(by_seed))


def seconds_cell(xs):
    """'741 s (737–746)': the mean and the range of some runs' times."""
    xs = list(xs)
    mean = mean_std(xs)[0]
    return f"{mean:,.0f} s" + (f" ({min(xs):,.0f}–{max(xs):,.0f})" if len(xs) > 1 else "")


def pct1(x):
    return "–" if x is None else f"{100 * x:.1f}"


def pct2(x):
    return f"{100 * x:.2f}"
