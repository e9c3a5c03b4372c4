#!/usr/bin/env python3
"""ctest "scripts: repro page": the results page generator (scripts/repro/page.py) on the fixture
results in data/results (a real `reproduce.sh --cpu --quick` run), checked by
check_results_page.py; and that the check fails when the page and the CSVs disagree. Also the
harness's small pieces: p99, flags a server lacks, input sizes, the paper's table, and what
--append merges (figure 6's series, run.json's parts, machine.json's link probes), and the
binaries' commit each command records.
Usage: test_repro_page.py WORK_DIR"""
import csv
import json
import os
import shutil
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "scripts"))
sys.path.insert(0, HERE)
import check_results_page  # noqa: E402
from repro import client, configs, machine, page, paper, stats  # noqa: E402
from repro import run as harness  # noqa: E402

failures = []


def expect(cond, what):
    print(("ok    " if cond else "FAIL  ") + what)
    if not cond:
        failures.append(what)


def fresh(work, name):
    d = os.path.join(work, name)
    shutil.rmtree(d, ignore_errors=True)
    shutil.copytree(os.path.join(HERE, "data"), d)
    return os.path.join(d, "results"), os.path.join(d, "results.md")


def rewrite_csv(path, change):
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
        fields = list(rows[0].keys())
    for r in rows:
        change(r)
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        w.writerows(rows)


def main():
    work = sys.argv[1]
    os.makedirs(work, exist_ok=True)

    # The page of the fixture shows the CSVs' numbers.
    results, md = fresh(work, "plain")
    text = page.write(results, md)
    errors = check_results_page.check(results, md, ["fig5", "fig6", "fig7", "fig8", "fig9"])
    for e in errors:
        print("  " + e)
    expect(not errors, "the page shows every number of the CSVs")
    expect("Plot skipped: matplotlib is not importable" in text, "the page says why plots are missing")
    expect(text.count("| ready model (lower bound) | resnet_tiny | 7.15 | 7.55 | 1.00x |") == 1,
           "figure 5's ready row as printed (7.154 -> 7.15, p99 7.547 -> 7.55)")
    expect("CPU run (`--cpu`)" in text, "a CPU run is labelled as such")
    expect(paper.LABEL + " ms" in text, "the paper's column is labelled " + paper.LABEL)

    # A page that disagrees with its CSVs fails the check: one number changed...
    bad = text.replace("| 7.15 | 7.55 |", "| 7.25 | 7.55 |", 1)
    with open(md, "w") as f:
        f.write(bad)
    errors = check_results_page.check(results, md, ["fig5"])
    expect(any("mean is 7.25" in e for e in errors), "a changed mean is caught")
    # ... a CSV value changed after the page was written...
    page.write(results, md)
    rewrite_csv(os.path.join(results, "fig7.csv"),
                lambda r: r.update(p99_ms="99.0") if r["series"] == "blocks" and
                r["model"] == "bert_tiny" else None)
    errors = check_results_page.check(results, md, ["fig7"])
    expect(any("p99" in e and "blocks bert_tiny" in e for e in errors), "a changed CSV p99 is caught")
    # ... a row missing from the page, and a plot the page links but that does not exist.
    page.write(results, md)
    with open(md) as f:
        lines = [l for l in f if "| per-layer groups, pipelined | inception_tiny |" not in l]
    with open(md, "w") as f:
        f.writelines(lines)
    errors = check_results_page.check(results, md, ["fig7"])
    expect(any("per-layer inception_tiny: 0 matching rows" in e for e in errors),
           "a missing row is caught")
    run_path = os.path.join(results, "run.json")
    with open(run_path) as f:
        run = json.load(f)
    run["plots"] = {"available": True, "reason": None, "files": {"fig5": "fig5.png"}}
    with open(run_path, "w") as f:
        json.dump(run, f)
    page.write(results, md)
    errors = check_results_page.check(results, md, ["fig5"])
    expect(any("fig5.png does not exist" in e for e in errors), "a missing plot is caught")
    open(os.path.join(results, "fig5.png"), "wb").close()
    expect(not check_results_page.check(results, md, ["fig5"]), "a plot that exists passes")

    # Training not available: the points say so, with no number, and the check still passes.
    results, md = fresh(work, "no_training")
    why = "not available (training not implemented on this backend: test)"
    for f in ("fig5.csv", "fig6.csv"):
        rewrite_csv(os.path.join(results, f), lambda r: r.update(
            {k: "" for k in r if k not in ("figure", "series", "label", "source", "model",
                                           "cycle_s", "config", "background", "paper_ms")},
            status=why) if r.get("background") == "training" or
            (f == "fig6.csv" and r["series"] != "ready") else None)
    text = page.write(results, md)
    errors = check_results_page.check(results, md, ["fig5", "fig6"])
    for e in errors:
        print("  " + e)
    expect(not errors, "a page with points not available agrees with its CSVs")
    fig6 = text[text.index("## Figure 6"):text.index("## Figure 7")]
    expect(fig6.count(why) == 3 * 3 + 1, "figure 6: each of 3 training series x 3 cycles says not available, "
           "and the paragraph once")
    expect("| PipeSwitch, switching from training (TRAIN job active) | resnet_tiny | %s |" % why
           in text, "figure 5's training point says not available")

    # --append (the full mode split over commands): figure 6 keeps the series not measured,
    # run.json lists each command, machine.json each link probe; the page shows them.
    old6 = [{"series": "ready", "cycle_s": ""}, {"series": "pipeswitch", "cycle_s": "1"},
            {"series": "kill-restart", "cycle_s": "1"}]
    new6 = [{"series": "cache", "cycle_s": "1"}, {"series": "kill-restart", "cycle_s": "2"}]
    merged = harness.merge_fig6(old6, new6, ["cache", "kill-restart"])
    expect([(r["series"], r["cycle_s"]) for r in merged] ==
           [("ready", ""), ("pipeswitch", "1"), ("cache", "1"), ("kill-restart", "2")],
           "figure 6 after --append: old series kept, re-measured ones replaced, in order")
    part1 = {"figures": ["fig5", "fig9"], "steps_s": {"probe": 7.0, "server_points": 216.4},
             "total_s": 400.2, "command": "c1", "plots": {"files": {"fig5": "fig5.png"}}}
    part2 = {"figures": ["fig6", "fig7"], "steps_s": {"probe": 7.2, "fig6": 209.1, "plots": 0.2},
             "total_s": 313.4, "command": "c2 --append", "plots": {"files": {"fig6": "fig6.png"}}}
    part1["binaries"] = part2["binaries"] = "a1"
    part3 = dict(part2, figures=["fig6"], total_s=300.0, command="c3 --append", binaries="b2")
    info = harness.merge_run_info(harness.merge_run_info(part1, part2), part3)
    expect([p["command"] for p in info["parts"]] == ["c1", "c2 --append", "c3 --append"] and
           info["total_s"] == 1013.6 and info["figures"] == ["fig5", "fig6", "fig7", "fig9"] and
           sorted(info["plots"]["files"]) == ["fig5", "fig6"],
           "run.json after two --append runs: three parts, times summed, figures and plots joined")
    rt = page.run_time_text(info)
    expect(rt.startswith("1014 s in 3 commands (figures 5,9: probe 7 s, server_points 216 s; "
                         "figures 6,7: probe 7 s, fig6 209 s; figure 6:") and "plots 0 s" not in rt,
           "the page's run time names each command's steps (under half a second left out)")
    expect(page.binaries_text(info) == "a1 (figures 5,9 / 6,7); b2 (figures 6)",
           "the page names each command's binaries with the figures they measured")
    expect(page.binaries_text(part1) == "a1" and
           page.binaries_text(harness.merge_run_info(part1, part1)) == "a1",
           "one commit for every command: named once")
    bundle_bin = os.path.join(work, "bundle", "bin")
    os.makedirs(bundle_bin, exist_ok=True)
    with open(os.path.join(work, "bundle", "COMMIT"), "w") as f:
        f.write("5fdf351\n")
    expect(machine.binaries_commit(bundle_bin, os.path.join(work, "no-checkout")) == "5fdf351" and
           machine.binaries_commit(os.path.join(work, "build"), os.path.join(work, "no-checkout"))
           is None, "the binaries' commit: a bundle's COMMIT file, else the checkout's (none here)")
    m1 = {"pinned_h2d_gbps": 55.4, "copy_fixed_us": 2.6, "torch": "2.11", "commit": "a"}
    m2 = {"pinned_h2d_gbps": 46.1, "copy_fixed_us": 3.0, "torch": None, "commit": "b"}
    mm = machine.merge(m1, m2)
    expect(mm["torch"] == "2.11" and mm["commit"] == "b" and mm["pinned_h2d_gbps"] == 46.1 and
           [p["gbps"] for p in mm["links"]] == [55.4, 46.1],
           "machine.json after --append: the newer record, the torch version kept, both probes")
    expect(page.link_text(mm) == "55.4, 46.1 GB/s, 2.6-3.0 us per copy (one probe per command)",
           "the page lists every command's link probe")
    expect(page.link_text(m1) == "55.4 GB/s, 2.6 us per copy", "one probe as before")

    # Small pieces.
    expect(stats.p99(list(range(1, 11))) == 10, "p99 of 10 values is the largest")
    expect(stats.p99(list(range(1, 101))) == 99, "p99 of 1..100 is 99")
    expect(configs.server_flags("co-run", "--policy --grouping") == ["--policy", "ready"],
           "a flag the server lacks is dropped with its value")
    expect(configs.server_flags("co-run", "--policy --training") ==
           ["--policy", "ready", "--training", "co-run"], "a flag the server has is kept")
    bert = {"batch": 1, "inputs": [("input_ids", "int64", [1, 16]),
                                   ("token_type_ids", "int64", [1, 16])]}
    data = client.make_input(bert, 8)
    expect(len(data) == 2 * 8 * 16 * 8, "BERT input: ids and types, int64 [8,16] each")
    expect(max(data[8 * 128 + i] for i in range(0, 8 * 128, 8)) <= 1, "token types are 0/1")
    image = {"batch": 8, "inputs": [("input", "float32", [8, 3, 299, 299])]}
    expect(len(client.make_input(image, 8)) == 8_582_496, "Inception v3 input: the paper's 8,582,496 B")
    expect(paper.value("fig5", "ready", "resnet152") == 37.1 and
           paper.value("fig9", "kill-restart", "bert_base") == 7378 and
           paper.value("fig8", "pageable", "inception_tiny") == 40.0 and
           paper.value("fig7", "blocks", "resnet152") is None, "the paper's numbers as PIPESWITCH.md")

    print("test_repro_page: %s" % ("%d FAILED" % len(failures) if failures else "ok"))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
