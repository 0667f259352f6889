"""`check --fix` on generated files, as ruff's fix fuzzing: prints crashes, fixes that fail to parse and
non-idempotent fixes (target 0 / 0 / 0), for safe fixes and with --unsafe-fixes.

    .venv/bin/python tests/bench/bench_fix_property.py [--files 10000] [--seed 0]

The files come from tests/robustness/fix_generator.py (the rules' own patterns, corpus scripts, line
continuations, form feeds, CRLF and mixed line endings, no final newline). Each round writes a batch
into a temporary directory and runs the real CLI (`torchsanity check --fix`) on it in a subprocess,
twice: the second run must change nothing.
"""

from __future__ import annotations

import argparse
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "robustness"))

from fix_generator import generate  # noqa: E402

BATCH = 500


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "torchsanity.server", "check", "--no-config", "--no-cache", *args],
                          cwd=cwd, capture_output=True, text=True)


def run(files: int, seed: int, unsafe: bool) -> dict[str, int]:
    rng = random.Random(seed)
    counts = {"files": 0, "changed": 0, "crashes": 0, "parse_failures": 0, "non_idempotent": 0}
    flags = ["--unsafe-fixes"] if unsafe else []
    done = 0
    while done < files:
        size = min(BATCH, files - done)
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            originals = {}
            for i in range(size):
                data = generate(rng).encode("utf-8")
                (folder / f"g{i:05d}.py").write_bytes(data)
                originals[f"g{i:05d}.py"] = data
            first = _cli("--fix", "-q", *flags, ".", cwd=folder)
            if first.returncode not in (0, 1) or "Traceback" in first.stderr:
                counts["crashes"] += 1
                print(f"exit {first.returncode}: {first.stderr.strip()[-500:]}", file=sys.stderr)
            counts["crashes"] += first.stdout.count("internal error") + first.stderr.count("internal error")
            fixed = {name: (folder / name).read_bytes() for name in originals}
            for name, data in fixed.items():
                counts["changed"] += data != originals[name]
                try:
                    compile(data, name, "exec", dont_inherit=True)
                except SyntaxError:
                    counts["parse_failures"] += 1
            _cli("--fix", "-q", *flags, ".", cwd=folder)
            counts["non_idempotent"] += sum((folder / name).read_bytes() != data for name, data in fixed.items())
        done += size
        counts["files"] = done
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    for unsafe in (False, True):
        began = time.perf_counter()
        counts = run(args.files, args.seed, unsafe)
        label = "check --fix --unsafe-fixes" if unsafe else "check --fix"
        print(f"{label}: {counts['files']} files, {counts['changed']} changed; crashes {counts['crashes']}, "
              f"fixes that fail to parse {counts['parse_failures']}, non-idempotent {counts['non_idempotent']} "
              f"(target 0 / 0 / 0) in {time.perf_counter() - began:.0f} s")


if __name__ == "__main__":
    main()
