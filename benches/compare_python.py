#!/usr/bin/env python3
"""lightning-mcp against the Python `lightning-mcp`, side by side, on this machine.

    python3 benches/compare_python.py VENV

VENV is a virtualenv with the Python project and its HTTP server installed (`python3 -m venv
VENV && VENV/bin/pip install 'lightning-mcp[server]'`; it brings PyTorch, Lightning, FastAPI
and uvicorn). The script runs, from
this checkout, with the release profile and the CPU backend only:

- `cargo bench --bench process`: whole-process stdio timings, ours, then with
  LIGHTNING_MCP_BENCH_SERVER=VENV/bin/lightning-mcp;
- `cargo bench --bench http`: HTTP requests/s and latency, the same two ways;
- `cargo bench --bench zoo` with `LIGHTNING_MCP_TORCH_PYTHON=VENV/bin/python`: a training step
  of each built-in model through the sandbox, in alternating rounds with the same network in
  PyTorch eager (`benches/torch_models.py`).

and prints each pair with the ratio. Only the Python standard library is needed to run it.
"""

import argparse
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CARGO_BENCH = ["cargo", "bench", "-p", "lightning-mcp", "--no-default-features", "--bench"]


def run(command, env=None):
    """Runs `command` in the checkout, echoing it; returns its stdout."""
    print("$", " ".join(str(c) for c in command), file=sys.stderr, flush=True)
    done = subprocess.run(
        command, cwd=ROOT, env={**os.environ, **(env or {})}, stdout=subprocess.PIPE, text=True
    )
    if done.returncode != 0:
        sys.exit(f"{command[0]} failed with exit status {done.returncode}")
    print(done.stdout, file=sys.stderr, flush=True)
    return done.stdout


def bench(name, server=None):
    env = {"LIGHTNING_MCP_BENCH_SERVER": str(server)} if server else None
    return run(CARGO_BENCH + [name], env)


def medians(output):
    """{what: median ms} from the process bench's lines."""
    found = {}
    for line in output.splitlines():
        match = re.match(r"^(\S.*?)\s+median\s+([\d.]+) ms", line)
        if match:
            found[match.group(1)] = float(match.group(2))
    return found


def throughputs(output):
    """{(request, connections): (req/s, p50 ms, p99 ms)} from the http bench's lines."""
    found = {}
    pattern = r"^(\S.*?)\s+(\d+) connection\(s\)\s+([\d.]+) req/s\s+p50\s+([\d.]+) ms\s+p99\s+([\d.]+) ms"
    for line in output.splitlines():
        match = re.match(pattern, line)
        if match:
            what, connections, rate, p50, p99 = match.groups()
            found[(what, int(connections))] = (float(rate), float(p50), float(p99))
    return found


def table(header, rows):
    widths = [max(len(str(row[i])) for row in [header] + rows) for i in range(len(header))]
    for row in [header] + rows:
        print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths)))
    print()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("venv", type=Path, help="a virtualenv with the Python lightning-mcp")
    parser.add_argument(
        "--skip", action="append", default=[], choices=["process", "http", "models"],
        help="leave out a measurement (repeatable)",
    )
    args = parser.parse_args()
    python_server = args.venv / "bin" / "lightning-mcp"
    if not python_server.exists():
        sys.exit(f"{python_server} not found: install the Python project into {args.venv} first")

    if "process" not in args.skip:
        ours, theirs = medians(bench("process")), medians(bench("process", python_server))
        rows = [
            [what, f"{ms:.1f} ms", f"{theirs[what]:.0f} ms", f"{theirs[what] / ms:.0f}x"]
            for what, ms in ours.items()
            if what in theirs
        ]
        print("Whole process over stdio (median; from starting the server)")
        table(["what", "lightning-mcp", "Python", "Python / ours"], rows)

    if "http" not in args.skip:
        check = [str(args.venv / "bin" / "python"), "-c", "import fastapi, uvicorn"]
        if subprocess.run(check, stderr=subprocess.DEVNULL).returncode != 0:
            sys.exit(f"{args.venv} lacks FastAPI or uvicorn, which the Python project's HTTP "
                     "server needs: install 'lightning-mcp[server]' there (or pass --skip http)")
        ours, theirs = throughputs(bench("http")), throughputs(bench("http", python_server))
        rows = []
        for key, (rate, p50, p99) in ours.items():
            if key in theirs:
                rate_py, p50_py, p99_py = theirs[key]
                rows.append([
                    key[0], key[1], f"{rate:.0f}", f"{p50:.3f} / {p99:.3f} ms",
                    f"{rate_py:.0f}", f"{p50_py:.3f} / {p99_py:.3f} ms", f"{rate / rate_py:.1f}x",
                ])
        print("HTTP on loopback (requests/s; p50 / p99 latency)")
        table(["request", "conns", "ours req/s", "ours p50/p99", "Python req/s",
               "Python p50/p99", "ours / Python"], rows)

    if "models" not in args.skip:
        python = args.venv / "bin" / "python"
        output = run(CARGO_BENCH + ["zoo"], {"LIGHTNING_MCP_TORCH_PYTHON": str(python)})
        side_by_side = output[output.find("Training throughput per model"):]
        print(side_by_side or "the zoo bench printed no side-by-side table (is torch installed?)")


if __name__ == "__main__":
    main()
