"""`make bench`: every benchmark beside its reference, on SQLite and on PostgreSQL + Redis.

Runs, for each backend, `bench.overhead`, `bench.query_agent_load` (concurrency), `bench.ingest`
and `bench.fanout` one after the other (each as its own process: each starts and stops its own
servers), each writing `<benchmark>-<backend>.json` and `.png` into `--out`. Then prints the
ratio table of issue 14 (the goals beside the measured ratios, met or not) and, when `--out` is
`bench/results`, rewrites the "Latest" block of `bench/RESULTS.md` and of the README's
"Benchmarks" section with it, the command and the machine.

    .venv/bin/python -m bench [--backends sqlite,postgres] [--only overhead,ingest,...]
        [--full] [--py-spy] [--out bench/results] [--redis-db 4]

The PostgreSQL + Redis backend needs both servers on 127.0.0.1 (5432, 6379); when either is
absent it is skipped with a message. One full `make bench` takes ~25 minutes (~27 with --full).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench import harness as h

BENCHMARKS: dict[str, tuple[str, list[str]]] = {
    "overhead": ("bench.overhead", []),
    "concurrency": ("bench.query_agent_load", []),
    "ingest": ("bench.ingest", []),
    "fanout": ("bench.fanout", []),
}
RESULTS_MD = h.ROOT / "bench" / "RESULTS.md"
README_MD = h.ROOT / "README.md"
BEGIN, END = "<!-- bench:latest:begin -->", "<!-- bench:latest:end -->"


def reachable(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((h.HOST, port)) == 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add = parser.add_argument
    add("--backends", default="sqlite,postgres", help="sqlite,postgres (both)")
    add("--only", default=",".join(BENCHMARKS), help="benchmarks to run (all)")
    add("--full", action="store_true", help="fan-out for 120 s instead of 60 s")
    add("--py-spy", action="store_true", help="also profile overhead and ingest (needs root)")
    add("--out", type=Path, default=h.RESULTS_DIR, help="where results go (bench/results)")
    add("--redis-db", type=int, default=h.DEFAULT_REDIS_DB, help="Redis database (4)")
    add("--no-update", action="store_true", help="do not rewrite bench/RESULTS.md")
    args = parser.parse_args()
    h.guard_run(None)
    backends = [b for b in args.backends.split(",") if b]
    chosen = [b for b in args.only.split(",") if b]
    unknown = [b for b in chosen if b not in BENCHMARKS]
    if unknown:
        raise SystemExit(f"unknown benchmarks {unknown}; choose from {list(BENCHMARKS)}")
    if "postgres" in backends and not (reachable(5432) and reachable(6379)):
        print("PostgreSQL (5432) or Redis (6379) is not reachable: the postgres backend is skipped")
        backends.remove("postgres")
    started = time.time()
    failures = []
    for backend in backends:
        for name in chosen:
            module, extra = BENCHMARKS[name]
            out = args.out.resolve()
            shown = out.relative_to(h.ROOT) if out.is_relative_to(h.ROOT) else out
            argv = [h.PYTHON, "-m", module, "--backend", backend, "--out", str(shown),
                    "--redis-db", str(args.redis_db), *extra]  # fmt: skip
            if args.full and name == "fanout":
                argv.append("--full")
            if args.py_spy and name in ("overhead", "ingest"):
                argv.append("--py-spy")
            print(f"\n=== {name} on {backend}: {shlex.join(argv[1:])}", flush=True)
            code = run_child(argv)
            if code:
                failures.append(f"{name} on {backend} (exit {code})")
    print(f"\n=== make bench: {time.time() - started:.0f} s")
    given = shlex.join(sys.argv[1:])
    command = f'make bench BENCH_ARGS="{given}"' if given else "make bench"
    lines = latest_block(args.out, backends, chosen, command)
    print("\n".join(lines))
    if not args.no_update and args.out.resolve() == h.RESULTS_DIR.resolve():
        for path in (RESULTS_MD, README_MD):
            update_block(path, lines)
        print("(written to bench/RESULTS.md and README.md)")
    if failures:
        print("FAILED: " + "; ".join(failures))
        return 1
    return 0


def run_child(argv: list[str]) -> int:
    """Run one benchmark; on Ctrl-C or SIGTERM let it clean up (stop its servers, drop its
    database) before leaving: it got the Ctrl-C too, and is sent SIGTERM otherwise."""
    child = subprocess.Popen(argv, cwd=h.ROOT)
    try:
        return child.wait()
    except BaseException:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)  # ignored if it is already cleaning up
            try:
                child.wait(120)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
        raise


def load(out: Path, benchmark: str, backend: str) -> dict[str, Any] | None:
    path = out / f"{benchmark}-{backend}.json"
    try:
        return dict(json.loads(path.read_text()))
    except (OSError, ValueError):
        return None


def latest_block(out: Path, backends: list[str], chosen: list[str], command: str) -> list[str]:
    """The ratio table per backend, from the JSON results in `out`."""
    lines = []
    for backend in backends:
        results = [r for name in chosen if (r := load(out, name, backend))]
        if not results:
            continue
        machine = results[0]["machine"]
        label = "PostgreSQL + Redis" if backend == "postgres" else "SQLite"
        lines += [
            "",
            f"### {label}",
            "",
            f"`{command}` at commit {machine['commit']} (bridge code of"
            f" {machine.get('code_commit', '?')}), {results[0]['started'][:16]} UTC; "
            f"{machine['cores']} x {machine['cpu']}, {machine['memory_gb']} GB, "
            f"Python {machine['python']}.",
            "",
        ]
        rows = [h.Comparison(**c) for r in results for c in r["comparisons"]]
        lines += h.comparison_table(rows)
        lines.append("")
        for r in results:
            shares = [round.get("metrics", {}).get("other_load_share") for round in r["rounds"]]
            present = [s for s in shares if s is not None]
            load_text = (
                f"other processes used {min(present):.0%}-{max(present):.0%} of the machine"
                if present
                else "load not measured"
            )
            loadavg = f"{r['machine']['loadavg_start'][0]} -> {r['machine']['loadavg_end'][0]}"
            lines.append(
                f"- {r['benchmark']}: {load_text} during the rounds (load average {loadavg});"
                f" `{r['command']}`; chart `{r['benchmark']}-{backend}.png`"
            )
            lines += [f"  - {note}" for note in r.get("notes", [])]
    return lines


def update_block(path: Path, lines: list[str]) -> None:
    """Replace what sits between the latest-table markers of `path`; a file without them (a
    README that dropped its table) is left alone rather than given a table in a random place."""
    text = path.read_text()
    if BEGIN not in text or END not in text:
        return
    before, _, rest = text.partition(BEGIN)
    _, _, after = rest.partition(END)
    path.write_text(before + BEGIN + "\n" + "\n".join(lines).strip("\n") + "\n" + END + after)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONDONTWRITEBYTECODE", "1")
    sys.exit(main())
