#!/usr/bin/env python3
"""Checks that a results page (docs/results.md) shows exactly the numbers of its CSV files.

For every row of figN.csv the page's table of that figure must have the row (series label,
model; figure 6: label, cycle) with, when the status is ok, the mean, p99 and ratios equal to the
CSV's to the precision printed, the original's number equal, and otherwise the status text; the
table must have no other rows; each figure must show its plot or say why it was skipped, and a
plot the page links must exist.

Usage: check_results_page.py RESULTS_DIR PAGE [--figures 5,6,7,8,9]
Exit status 0 when the page agrees, 1 (with every disagreement listed) when it does not.
"""
import argparse
import csv
import os
import re
import sys

FIG_TITLES = {"fig5": "Figure 5", "fig6": "Figure 6", "fig7": "Figure 7", "fig8": "Figure 8",
              "fig9": "Figure 9"}


def sections(page):
    """{'fig5': [lines], ...} from '## Figure N' headings."""
    out, cur = {}, None
    for line in page.splitlines():
        if line.startswith("## "):
            cur = next((k for k, t in FIG_TITLES.items() if line[3:].startswith(t + ":")), None)
            if cur:
                out[cur] = []
            continue
        if cur:
            out[cur].append(line)
    return out


def table_rows(lines):
    rows = []
    for line in lines:
        if line.startswith("|") and not line.startswith("|---"):
            rows.append([c.strip() for c in line.strip().strip("|").split("|")])
    return rows[1:] if rows else []      # the header dropped


def agrees(cell, value, what, errors, where):
    """The printed number (perhaps with an 'x' suffix) equals `value` to its printed precision."""
    if value in (None, ""):
        if cell != "-":
            errors.append("%s: %s is '%s', the CSV has none" % (where, what, cell))
        return
    m = re.fullmatch(r"(-?[0-9]+(?:\.([0-9]+))?)x?", cell)
    if not m:
        errors.append("%s: %s is '%s', not a number (CSV %s)" % (where, what, cell, value))
        return
    decimals = len(m.group(2) or "")
    tolerance = 0.5 * 10 ** -decimals + 1e-9 * abs(float(value))
    if abs(float(m.group(1)) - float(value)) > tolerance:
        errors.append("%s: %s is %s, the CSV says %s" % (where, what, cell, value))


def check(results_dir, page_path, figure_keys):
    errors = []
    with open(page_path) as f:
        page = f.read()
    secs = sections(page)
    for key in figure_keys:
        path = os.path.join(results_dir, key + ".csv")
        if not os.path.exists(path):
            errors.append("%s is missing" % path)
            continue
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
        if key not in secs:
            errors.append("the page has no section for %s" % FIG_TITLES[key])
            continue
        lines = secs[key]
        images = [re.search(r"\]\((results/[^)]+)\)", l) for l in lines if l.startswith("![")]
        if images:
            for m in images:
                if not os.path.exists(os.path.join(os.path.dirname(page_path), m.group(1))):
                    errors.append("%s: the plot %s does not exist" % (key, m.group(1)))
        elif not any(l.startswith("*Plot skipped: ") for l in lines):
            errors.append("%s: neither a plot nor the reason it was skipped" % key)
        table = table_rows(lines)
        if len(table) != len(rows):
            errors.append("%s: the page's table has %d rows, the CSV %d" % (key, len(table), len(rows)))
        for r in rows:
            if key == "fig6":
                match = [t for t in table if t[0] == r["label"] and t[1] == (r["cycle_s"] or "-")]
                where = "%s %s cycle %s" % (key, r["series"], r["cycle_s"] or "-")
            else:
                match = [t for t in table if t[0] == r["label"] and t[1] == r["model"]]
                where = "%s %s %s" % (key, r["series"], r["model"])
            if len(match) != 1:
                errors.append("%s: %d matching rows in the page" % (where, len(match)))
                continue
            t = match[0]
            if key == "fig6":
                if r["status"] == "ok":
                    agrees(t[2], r["throughput_per_s"], "throughput", errors, where)
                    agrees(t[3], r["mean_ms"], "mean", errors, where)
                    agrees(t[4], r["p99_ms"], "p99", errors, where)
                    if t[5] != r["requests"]:
                        errors.append("%s: requests %s, the CSV %s" % (where, t[5], r["requests"]))
                elif t[2] != r["status"]:
                    errors.append("%s: status '%s', the CSV '%s'" % (where, t[2], r["status"]))
                continue
            if r["status"] == "ok":
                agrees(t[2], r["mean_ms"], "mean", errors, where)
                agrees(t[3], r["p99_ms"], "p99", errors, where)
                agrees(t[4], r["vs_ready"], "x ready", errors, where)
                agrees(t[5], r["vs_pytorch"], "x PyTorch", errors, where)
            elif t[2] != r["status"]:
                errors.append("%s: status '%s', the CSV '%s'" % (where, t[2], r["status"]))
            agrees(t[6], r["paper_ms"], "original (V100, paper)", errors, where)
    return errors


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("results")
    ap.add_argument("page")
    ap.add_argument("--figures", default="5,6,7,8,9")
    a = ap.parse_args()
    errors = check(a.results, a.page, ["fig" + f for f in a.figures.split(",")])
    for e in errors:
        print("MISMATCH: " + e)
    print("check_results_page: %s (%s)" % ("FAILED" if errors else "ok", a.page))
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
