"""
The README and the results pages: each table on them rendered anew from the committed run records (the tables:
tables.py), checked against them, and the pages' figures drawn.

    python report.py              # rewrite each table between its markers (and draw the figures: figures.py)
    python report.py --check      # exit 1 naming the page, table, row and column that differ from the records
    python report.py --list       # each table and its page
    python report.py --no_figures # the tables alone

A table on a page sits between two markers, and only what is between them is rewritten; the prose around a table
stays hand-written and never retypes one of its figures:

    <!-- table: students_recipe -->
    | row | the student learns from | ... |
    <!-- /table -->

Each name is a function of tables.py (registered in records.RENDER) that reads records only (metrics.json,
runner.json, settings.json, a pipeline's results.json or report JSON: small files committed under results/, never
weights), so the check is fast and runs in the test suite. A table whose records are missing fails the check with the path it looked for. The
README's experiments table is prose, but every decimal number in it must appear in a rendered table (`--check`
says which does not).

A run's record names the command that made it, the commit, the machine and the precision (runs.provenance); each
page says on which machine its numbers were measured, from these records (`machines` below).
"""
import os
import re
import sys

import figures
import records
import tables  # noqa: F401  (its tables register themselves in records.RENDER)
import tables_llm  # noqa: F401  (and the LLM side's)
from cli import run_main
from records import READ, RENDER, MissingRecord, renders
from runs import table

MARK = re.compile(r"<!-- table: ([\w.-]+) -->\n(.*?)<!-- /table -->", re.S)


def machine_of(rec):
    """Where a record says it ran: its runs.provenance, or what an older record implies (train.py ran in fp32 where
    bf16 was asked for only on a CPU without native bf16)."""
    prov = rec.get("record") if isinstance(rec.get("record"), dict) else None
    if prov and prov.get("machine"):
        m = prov["machine"]
        bf16 = "AVX-512 BF16" if m.get("avx512_bf16") else "no native bf16 (AVX2)" if m.get("avx2") else "no bf16"
        return (f"{m.get('cpu') or 'CPU'} ({bf16}), {m.get('threads')} thread(s)"
                + (f", GPU {m['gpu']}" if m.get("gpu") else "")
                + (f", {prov['precision']}" if prov.get("precision") else ""))
    cfg = rec.get("config") if isinstance(rec.get("config"), dict) else {}
    if rec.get("precision") == "fp32" and cfg.get("bf16") == 1:
        return "not recorded: a CPU without native bf16 (bf16 asked, fp32 ran), fp32"
    if rec.get("precision") == "bf16":
        return "not recorded: a CPU with native bf16, bf16"
    return "not recorded"


@renders("machines")
def machines():
    """Every machine the records of this page name, and how many records each."""
    counts = {}
    for path, rec in READ.items():
        if isinstance(rec, dict) and (path.endswith(("/metrics.json", ".report.json")) or "median" in rec
                                      or "record" in rec):
            where = machine_of(rec)
            counts[where] = counts.get(where, 0) + 1
    return table(["machine, as the records say", "records"], [[m, str(n)] for m, n in sorted(counts.items())])


# ---------------------------------------------------------------------------------------------
# Pages: find the markers, render, compare

def pages():
    """The README and every results page (results/*.md), relative to the repository."""
    folder = os.path.join(records.HERE, "results")
    return ["README.md", *sorted(os.path.join("results", f) for f in os.listdir(folder) if f.endswith(".md"))]


def rows_of(text):
    """A markdown table's rows as lists of cells (the separator row left out)."""
    out = []
    for line in text.strip().splitlines():
        if line.startswith("|") and not re.fullmatch(r"\|(\s*:?-+:?\s*\|)+", line.strip()):
            out.append([c.strip() for c in line.strip().strip("|").split("|")])
    return out


def first_difference(page, name, held, wanted):
    """One line naming the cell where the page's table differs from the records' (or a row missing / extra)."""
    have, want = rows_of(held), rows_of(wanted)
    header = want[0] if want else []
    for i in range(max(len(have), len(want))):
        if i >= len(have):
            return f"{page}: table {name}: row {want[i][0]!r} missing (the records give it)"
        if i >= len(want):
            return f"{page}: table {name}: row {have[i][0]!r} is not in the records"
        for j in range(max(len(have[i]), len(want[i]))):
            a = have[i][j] if j < len(have[i]) else None
            b = want[i][j] if j < len(want[i]) else None
            if a != b:
                column = header[j] if j < len(header) else f"column {j + 1}"
                where = "header" if i == 0 else f"row {want[i][0]!r}"
                return f"{page}: table {name}: {where}, column {column!r}: the page says {a!r}, the records give {b!r}"
    return f"{page}: table {name}: differs from the records outside its cells (spacing or lines)"


def render_page(page, text):
    """(new text, problems): each marked table rendered anew; problems name unknown tables and missing records. The
    machines table is rendered last, from the records the page's other tables read."""
    problems = []
    READ.clear()

    def one(m):
        name, held = m.group(1), m.group(2)
        if name not in RENDER:
            problems.append(f"{page}: table {name}: no such table in report.py")
            return m.group(0)
        try:
            wanted = RENDER[name]().rstrip("\n") + "\n"
        except MissingRecord as e:
            problems.append(f"{page}: table {name}: {e}")
            return m.group(0)
        if held != wanted:
            problems.append(first_difference(page, name, held, wanted))
        return f"<!-- table: {name} -->\n{wanted}<!-- /table -->"
    text = MARK.sub(lambda m: one(m) if m.group(1) != "machines" else m.group(0), text)
    return MARK.sub(lambda m: one(m) if m.group(1) == "machines" else m.group(0), text), problems


NUMBER = re.compile(r"(?<![\w.])[-+−]?\d[\d,]*\.\d+")


def experiments_numbers(readme, cells_by_page):
    """The README's experiments table (prose): the decimal numbers of each row that no rendered table of the page
    the row links to (or of the README) holds."""
    start = readme.find("| experiment | headline |")
    if start < 0:
        return ["README.md: the experiments table (| experiment | headline | ...) not found"]
    block = readme[start:readme.find("\n\n", start)]
    out = []
    for row in rows_of(block)[1:]:
        link = re.search(r"\]\((results/[\w.-]+\.md)(#[\w-]*)?\)", row[-1])
        page = link.group(1) if link else None
        held = cells_by_page.get(page, set()) | cells_by_page.get("README.md", set())
        for n in NUMBER.findall(row[1]):
            if n.lstrip("+-−") not in held:
                out.append(f"README.md: experiments table, row {row[0]!r}: {n} is in no rendered table of "
                           f"{page or 'the page it links to'}")
    return out


def numbers_in(text):
    return {n.lstrip("+-−") for n in NUMBER.findall(text)}


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--list":
        for page in pages():
            for name in MARK.findall(open(os.path.join(records.HERE, page), encoding="utf-8").read()):
                print(f"{page}: {name[0]}")
        return 0
    check = argv[:1] == ["--check"]
    if argv and not check and argv != ["--no_figures"]:
        print("usage: python report.py [--check | --list | --no_figures]", file=sys.stderr)
        return 2
    problems, cells = [], {}
    for page in pages():
        path = os.path.join(records.HERE, page)
        with open(path, encoding="utf-8") as f:
            text = f.read()
        new, found = render_page(page, text)
        problems += found
        for m in MARK.finditer(new):
            cells.setdefault(page, set()).update(numbers_in(m.group(2)))
        if not check and new != text:
            with open(path, "w", encoding="utf-8") as f:
                f.write(new)
            print(f"{page}: tables rendered")
    with open(os.path.join(records.HERE, "README.md"), encoding="utf-8") as f:
        problems += experiments_numbers(f.read(), cells)
    if check:
        for p in problems:
            print(p)
        print(f"report.py --check: {len(problems)} problem(s)" if problems else "report.py --check: every table "
              "matches its records")
        return 1 if problems else 0
    for p in problems:
        if "record missing" in p or "no such table" in p or "rendered table" in p:
            print(p, file=sys.stderr)
    if "--no_figures" not in argv:
        figures.main([])  # the pages' figures, from the same records
    return 0


if __name__ == "__main__":
    run_main(main)
