#!/usr/bin/env python3
"""Two builds of lightning-mcp side by side, interleaved: a whole-process 1-epoch training
over stdio (start, one legacy-form `lightning.train` of SimpleClassifier, stdin closed, exit),
alternating A and B so that the machine's drift treats them alike.

    python3 benches/whole_process_ab.py BINARY_A BINARY_B [ROUNDS]

Each binary runs in its own scratch directory (its checkpoints, and from the run store on,
its runs.sqlite3) with a shared, warmed compile cache, as after any first start. Prints the
median, min and p90 of each, and the median difference B - A.
"""

import statistics
import subprocess
import sys
import tempfile
import time

TRAIN = (
    '{"id":"1","method":"lightning.train","params":{"model":{"_target_":'
    '"lightning_mcp.models.simple.SimpleClassifier","input_dim":4,"num_classes":3},'
    '"trainer":{"max_epochs":1,"accelerator":"cpu"}}}\n'
)


def once(binary, scratch, cache):
    started = time.perf_counter()
    done = subprocess.run(
        [binary, "--log", "warn", "--cache-dir", cache, "--checkpoint-dir", scratch],
        input=TRAIN,
        capture_output=True,
        text=True,
        check=True,
    )
    elapsed = time.perf_counter() - started
    if '"isError":false' not in done.stdout.replace(" ", ""):
        sys.exit(f"{binary}: not a successful training: {done.stdout[:300]}")
    return elapsed * 1e3


def summary(times):
    times = sorted(times)
    p90 = times[round((len(times) - 1) * 0.9)]
    return f"median {statistics.median(times):6.2f} ms  min {times[0]:6.2f} ms  p90 {p90:6.2f} ms"


def main():
    a, b = sys.argv[1], sys.argv[2]
    rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 30
    with tempfile.TemporaryDirectory() as cache, tempfile.TemporaryDirectory() as da, \
            tempfile.TemporaryDirectory() as db:
        for _ in range(3):
            once(a, da, cache)
            once(b, db, cache)
        times_a, times_b = [], []
        for _ in range(rounds):
            times_a.append(once(a, da, cache))
            times_b.append(once(b, db, cache))
    print(f"A {a}\n  {summary(times_a)}")
    print(f"B {b}\n  {summary(times_b)}")
    diffs = [tb - ta for ta, tb in zip(times_a, times_b)]
    print(f"B - A, median of the paired differences: {statistics.median(diffs):+.2f} ms")


if __name__ == "__main__":
    main()
