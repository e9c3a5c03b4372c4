#!/usr/bin/env python3
"""scripts/torch_train.py's PSTOKEN1 reader against the C++ writer (tools/psbench/batch_file.h):
test_batch_file writes a token file and its expected contents as JSON (PS_TOKEN_FILE_DUMP);
read_token_file must give exactly those, and refuse the file truncated or with a byte more.
Needs neither numpy nor torch. Usage: test_token_file.py TEST_BATCH_FILE_BINARY WORK_DIR"""
import json
import os
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "scripts"))
import torch_train  # noqa: E402

binary, work = sys.argv[1], sys.argv[2]
shutil.rmtree(work, ignore_errors=True)
os.makedirs(work)
env = dict(os.environ, PS_TOKEN_FILE_DUMP=work)
subprocess.run([binary, "token file: a file and its expected contents for the Python reader"],
               check=True, env=env, stdout=subprocess.DEVNULL)
expected = json.load(open(os.path.join(work, "tokens.json")))
path = os.path.join(work, "tokens.bin")
header, specs, batches = torch_train.read_token_file(path)
failures = []


def check(what, got, want):
    if got != want:
        failures.append("%s: got %r, want %r" % (what, got, want))


check("header", header, {k: expected[k] for k in ("count", "classes", "batch")})
check("inputs", [(n, list(d), v) for n, d, v in specs],
      [(i["name"], i["dims"], i["vocab"]) for i in expected["inputs"]])
check("batch count", len(batches), expected["count"])
for b, (labels, ids) in enumerate(batches):
    want = expected["batches"][b]
    check("batch %d labels" % b, list(labels), want["labels"])
    for name, values in want["ids"].items():
        check("batch %d %s" % (b, name), list(ids[name]), values)

data = open(path, "rb").read()
for label, content in (("truncated", data[:-8]), ("a byte more", data + b"x")):
    bad = os.path.join(work, "bad.bin")
    open(bad, "wb").write(content)
    try:
        torch_train.read_token_file(bad)
        failures.append("%s: accepted" % label)
    except SystemExit:
        pass

for f in failures:
    print("FAIL " + f)
print("token file: %d batches of %d inputs checked, %d failures" %
      (len(batches), len(specs), len(failures)))
sys.exit(1 if failures else 0)
