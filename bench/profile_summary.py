"""Summarise py-spy's collapsed stacks again (after `--py-spy`), e.g. with other groups.

    .venv/bin/python -m bench.profile_summary bench/results/profiles/overhead-sqlite
    .venv/bin/python -m bench.profile_summary bench/results/profiles/ingest-postgres --groups ingest

Prints the exclusive share of each group (a sample goes to the first group with a frame on its
stack), the top leaf frames, and the top bridge frames by inclusive share: the tables of
`bench/PROFILE.md`.
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

from bench import harness as h
from bench.ingest import INGEST_GROUPS
from bench.overhead import BRIDGE_GROUPS

GROUPS = {"overhead": BRIDGE_GROUPS, "ingest": INGEST_GROUPS}


def read_stacks(directory: Path) -> Counter[str]:
    stacks: Counter[str] = Counter()
    for path in sorted(directory.glob("py-spy-*.txt")):
        for line in path.read_text(errors="replace").splitlines():
            stack, _, count = line.rpartition(" ")
            if count.isdigit():
                stacks[stack] += int(count)
    return stacks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("directory", type=Path)
    parser.add_argument("--groups", choices=tuple(GROUPS), default="overhead")
    parser.add_argument("--top", type=int, default=15)
    args = parser.parse_args()
    summary = h.summarise_stacks(read_stacks(args.directory), GROUPS[args.groups], args.top)
    print(f"{summary['samples']} samples in {args.directory}\n")
    print("| group (exclusive) | share |\n|---|---|")
    for label, share in summary["groups_pct"].items():
        print(f"| {label} | {share} % |")
    print("\n| leaf frame (self) | share |\n|---|---|")
    for frame, share in summary["top_self_pct"]:
        print(f"| `{frame}` | {share} % |")
    print("\n| bridge frame (inclusive) | share |\n|---|---|")
    for frame, share in summary["top_bridge_inclusive_pct"]:
        print(f"| `{frame}` | {share} % |")


if __name__ == "__main__":
    main()
