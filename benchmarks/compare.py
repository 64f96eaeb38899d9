"""Run benchmarks on this tree and on a baseline commit, in one run, one after the other.

    .venv/bin/python benchmarks/compare.py [--baseline-ref 41e16a5] [--rounds 1]
        bench_e2e.py bench_event_latency.py bench_runs.py [-- ARGS FOR EVERY SCRIPT]

The baseline is checked out into a temporary `git worktree`. Each tree runs its own copy of
the script with that tree first on PYTHONPATH (the servers the scripts start inherit it),
so each side measures its own code with its own harness; the same venv serves both. A
script the baseline does not have yet is copied into its tree, and so is any other file of
`benchmarks/*.py` (a helper module a script imports) or `benchmarks/workflows/*.py` it lacks
(the script must not need more of this tree's harness than that).
With `--same-harness`, every benchmark file of this tree (scripts, their helpers and
workflows) replaces the baseline's, so both sides run one harness and only the code under
test differs: for a script that gained options the baseline's copy lacks.
Rounds alternate baseline and this tree, so a machine that slows down midway weighs on both.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run(tree: Path, script: str, extra: list[str]) -> str:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    done = subprocess.run(
        [sys.executable, str(tree / "benchmarks" / script), *extra],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    out = done.stdout.strip()
    if done.returncode != 0:
        out += f"\n[exit {done.returncode}] {done.stderr.strip()[-2000:]}"
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--baseline-ref", default="41e16a5")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--same-harness", action="store_true")
    parser.add_argument("scripts", nargs="+")
    argv = sys.argv[1:]
    extra: list[str] = []
    if "--" in argv:
        extra = argv[argv.index("--") + 1 :]
        argv = argv[: argv.index("--")]
    args = parser.parse_args(argv)
    head = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    with tempfile.TemporaryDirectory(prefix="smithers-baseline-") as tmp:
        base = Path(tmp) / "tree"
        subprocess.run(
            ["git", "worktree", "add", "--detach", "-q", str(base), args.baseline_ref],
            cwd=ROOT,
            check=True,
        )
        if args.same_harness:
            shutil.copytree(ROOT / "benchmarks", base / "benchmarks", dirs_exist_ok=True)
            print("(the baseline runs this tree's benchmarks/)", flush=True)
        for script in args.scripts:
            if not (base / "benchmarks" / script).exists():
                print(f"(baseline has no {script}: it runs this tree's copy)", flush=True)
        for folder in ("benchmarks", "benchmarks/workflows"):
            for source in (ROOT / folder).glob("*.py"):
                if not (base / folder / source.name).exists():
                    shutil.copy(source, base / folder / source.name)
        try:
            for script in args.scripts:
                for round_no in range(1, args.rounds + 1):
                    for name, tree in ((f"baseline {args.baseline_ref}", base), (head, ROOT)):
                        print(f"== {script} · {name} · round {round_no}", flush=True)
                        print(run(tree, script, extra), flush=True)
                        print(flush=True)
        finally:
            subprocess.run(
                ["git", "worktree", "remove", "--force", str(base)], cwd=ROOT, check=False
            )


if __name__ == "__main__":
    main()
