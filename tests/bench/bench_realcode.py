"""Benchmark (a script, not a test): precision and recall of `torchsanity check` on real public code.

    python tests/bench/bench_realcode.py                 # every repository of the manifest
    python tests/bench/bench_realcode.py --repo karpathy/makemore --show-new

The corpus is described by ``tests/bench/realcode/manifest.json`` (format: tests/bench/realcode/README.md):
reviewed findings (TP / FP verdicts at a recorded commit) and recall cases (a line at the parent of a
commit that fixed a bug of the catalog). No third-party code lives in this project: the script reads the
repositories from local git mirrors (``--mirrors``, default ``/work/.mirror``, one ``owner+name/repo`` git
directory each), extracts each recorded commit's ``*.py`` files and notebooks (code cells joined into a
script) into a temporary directory, runs the real CLI on it, and prints:

- precision over the reviewed findings that are reported today (per repository and per code);
- reviewed findings the engine does not report (a fixed false positive, or a missed true positive);
- recall over the mined bug fixes (per repository and per code), with the misses listed;
- findings nobody reviewed yet (``--show-new`` lists them).

When no mirror is present it says so and exits 0: CI does not need the mirrors.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections import Counter, defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
MANIFEST = HERE / "realcode" / "manifest.json"
NOTEBOOK_SUFFIX = ".ipynb.py"


# ---- the mirrors -------------------------------------------------------------------------------------------


def git_dir(mirrors: Path, repo: str) -> Path | None:
    """The git directory of ``owner/name`` under the mirrors folder, or None when it is absent."""
    base = mirrors / repo.replace("/", "+") / "repo"
    for candidate in (base / ".git", base):
        if (candidate / "HEAD").is_file():
            return candidate
    return None


def _git(gitdir: Path, *args: str, data: bytes | None = None) -> bytes:
    return subprocess.run(["git", f"--git-dir={gitdir}", *args], input=data, capture_output=True, check=True).stdout


def notebook_script(text: str) -> str:
    """The code cells of a notebook as one script: cells in order, each followed by a blank line; IPython
    magics and shell lines (``%…``, ``!…``) become comments so every line keeps its number."""
    try:
        cells = json.loads(text).get("cells", [])
    except (ValueError, AttributeError):
        return ""
    lines: list[str] = []
    for cell in cells:
        if cell.get("cell_type") != "code":
            continue
        source = cell.get("source", "")
        source = "".join(source) if isinstance(source, list) else str(source)
        for line in source.splitlines():
            lines.append("# " + line if line.lstrip().startswith(("%", "!")) else line)
        lines.append("")
    return "\n".join(lines) + "\n"


def extract(gitdir: Path, commit: str, dest: Path) -> int:
    """Write the commit's Python files (and notebooks as scripts) under ``dest``; returns the file count."""
    names = _git(gitdir, "ls-tree", "-r", "--name-only", "-z", commit).decode("utf-8", "replace").split("\0")
    names = [n for n in names if n.endswith((".py", ".ipynb"))]
    if not names:
        return 0
    batch = _git(gitdir, "cat-file", "--batch", data="".join(f"{commit}:{n}\n" for n in names).encode())
    count, offset = 0, 0
    for name in names:
        end = batch.index(b"\n", offset)
        header = batch[offset:end].split()
        offset = end + 1
        if len(header) < 3 or header[1] != b"blob":  # "missing": a file the snapshot does not hold
            continue
        size = int(header[2])
        content, offset = batch[offset:offset + size], offset + size + 1
        target = dest / name
        if name.endswith(".ipynb"):
            target = dest / (name + ".py")
            content = notebook_script(content.decode("utf-8", "replace")).encode()
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
        count += 1
    return count


def checkout(gitdir: Path, commit: str, tree: Path) -> int:
    """Empty ``tree`` (created if needed) and extract the commit into it; returns the file count."""
    shutil.rmtree(tree, ignore_errors=True)
    tree.mkdir(parents=True)
    return extract(gitdir, commit, tree)


def check(tree: Path, cache: Path | None = None) -> list[dict]:
    """The findings of the real CLI on ``tree`` (paths relative to it, notebooks under their own name).

    ``cache`` is the CLI's ``--cache-dir``: a tree rebuilt at the same place for each commit of a repository
    then re-analyses only the files that changed (and those that depend on them); None checks without cache.
    """
    command = [sys.executable, "-m", "torchsanity.server.cli", "check", "--format", "json", "--no-config", "--exit-zero"]
    command += ["--cache-dir", str(cache)] if cache is not None else ["--no-cache"]
    done = subprocess.run([*command, "."], cwd=tree, capture_output=True, text=True, timeout=1800, check=False)
    if done.returncode not in (0, 1):
        raise RuntimeError(f"check failed on {tree}: {done.stderr.strip()[-2000:]}")
    # files that do not parse (Python 2 code, notebook cells with shell magics in blocks) have no code
    findings = [f for f in json.loads(done.stdout or "[]") if f.get("code") not in (None, "SAN000")]
    lines: dict[str, list[str]] = {}
    for finding in findings:
        path = Path(finding["path"]).as_posix()
        path = path.removeprefix("./")
        if path not in lines:
            lines[path] = (tree / path).read_text(encoding="utf-8", errors="replace").splitlines()
        text = lines[path][finding["line"] - 1] if 0 < finding["line"] <= len(lines[path]) else ""
        finding["text_sha1"] = hashlib.sha1(text.strip().encode()).hexdigest()
        finding["path"] = path[: -len(".py")] if path.endswith(NOTEBOOK_SUFFIX) else path
    return findings


# ---- scoring -----------------------------------------------------------------------------------------------


def _ratio(good: int, total: int) -> str:
    return f"{good}/{total} = {100.0 * good / total:5.1f} %" if total else "n/a"


def run_commits(mirrors: Path, commits: dict[str, set[str]], use_cache: bool = True) -> tuple[dict, list[str]]:
    """``check`` on every commit of every repository: {(repo, commit): findings}, and the repositories absent.

    Each repository's commits are extracted one after the other into the same temporary folder, so that with
    ``use_cache`` the CLI's cache (kept for this run only) spares the files a commit did not change."""
    reported: dict[tuple[str, str], list[dict]] = {}
    missing = []
    with tempfile.TemporaryDirectory(prefix="realcode-") as tmp:
        for repo in sorted(commits):
            gitdir = git_dir(mirrors, repo)
            if gitdir is None:
                missing.append(repo)
                continue
            tree, cache = Path(tmp) / "tree", Path(tmp) / repo.replace("/", "+")
            for commit in sorted(commits[repo]):
                found = checkout(gitdir, commit, tree)
                reported[(repo, commit)] = check(tree, cache if use_cache else None) if found else []
    return reported, missing


def score(manifest: dict, mirrors: Path, repos: set[str] | None, show_new: bool, use_cache: bool = True) -> int:
    """Run check on every recorded commit, print the figures; returns the number of repositories run."""
    reviewed = [f for f in manifest["findings"] if repos is None or f["repo"] in repos]
    cases = [c for c in manifest["recall"] if repos is None or c["repo"] in repos]
    commits: dict[str, set[str]] = defaultdict(set)
    for finding in reviewed:
        commits[finding["repo"]].add(finding["commit"])
    for case in cases:
        commits[case["repo"]].add(case["buggy_commit"])
    for repo, info in manifest["repos"].items():
        if repos is None or repo in repos:
            commits[repo].add(info["commit"])

    reported, missing = run_commits(mirrors, commits, use_cache)
    if missing:
        print(f"mirrors absent under {mirrors} for: {', '.join(missing)} (their entries are skipped)")
    if not reported:
        return 0

    # A finding is the same finding at every commit where its line reads the same (path, code, line text):
    # it is counted once, with the verdict given at any of those commits.
    distinct = {}
    for (repo, commit), found in reported.items():
        for f in found:
            distinct.setdefault((repo, f["path"], f["code"], f["text_sha1"]), (repo, commit, f["path"], f["line"], f["code"]))
    located = {(r, c, f["path"], f["line"], f["code"]): (r, f["path"], f["code"], f["text_sha1"])
               for (r, c), found in reported.items() for f in found}
    verdicts, gone = {}, []
    for entry in reviewed:
        if (entry["repo"], entry["commit"]) not in reported:
            continue
        key = located.get((entry["repo"], entry["commit"], entry["path"], entry["line"], entry["code"]))
        if key is None:
            gone.append(entry)
        else:
            verdicts.setdefault(key, entry)
    per_repo, per_code = defaultdict(Counter), defaultdict(Counter)
    for key, entry in verdicts.items():
        per_repo[key[0]][entry["verdict"]] += 1
        per_code[key[2]][entry["verdict"]] += 1
    new = sorted(where for key, where in distinct.items() if key not in verdicts)

    tp = sum(c["TP"] for c in per_repo.values())
    fp = sum(c["FP"] for c in per_repo.values())
    print(f"\ndistinct findings reported at the {len(reported)} recorded commits: {len(distinct)} "
          f"({len(verdicts)} reviewed, {len(new)} not yet)")
    print(f"PRECISION over the distinct reviewed findings reported today: {_ratio(tp, tp + fp)} "
          f"({len(per_repo)} repositories with findings, {len(commits)} repositories run)")
    for name, table in (("repository", per_repo), ("code", per_code)):
        for key in sorted(table):
            print(f"  {name:10} {key:60} TP {table[key]['TP']:4}  FP {table[key]['FP']:4}  "
                  f"{_ratio(table[key]['TP'], table[key]['TP'] + table[key]['FP'])}")
    for key, entry in sorted(verdicts.items()):
        if entry["verdict"] == "FP":
            print(f"  FP  {entry['repo']}@{entry['commit'][:10]} {entry['path']}:{entry['line']} {entry['code']}"
                  f"  ({entry['reason']})")
            if entry.get("diagnosis"):
                print(f"       needs: {entry['diagnosis']}")
    if gone:
        by_verdict = Counter(e["verdict"] for e in gone)
        print(f"\nreviewed findings this engine does not report: {by_verdict['FP']} FP (fixed), "
              f"{by_verdict['TP']} TP (missed)")
        for entry in gone:
            if entry["verdict"] == "TP":
                print(f"  missed TP  {entry['repo']}@{entry['commit'][:10]} {entry['path']}:{entry['line']} {entry['code']}")

    hits, per_repo_recall, per_code_recall, misses = 0, defaultdict(Counter), defaultdict(Counter), []
    for case in cases:
        found = reported.get((case["repo"], case["buggy_commit"]))
        if found is None:
            continue
        hit = any(f["path"] == case["path"] and f["code"] == case["code"] and f["line"] == case["line"] for f in found)
        hits += hit
        for table, key in ((per_repo_recall, case["repo"]), (per_code_recall, case["code"])):
            table[key]["hit" if hit else "miss"] += 1
        if not hit:
            misses.append(case)
    total = sum(sum(c.values()) for c in per_repo_recall.values())
    print(f"\nRECALL over mined bug fixes: {_ratio(hits, total)}")
    for name, table in (("repository", per_repo_recall), ("code", per_code_recall)):
        for key in sorted(table):
            print(f"  {name:10} {key:60} {_ratio(table[key]['hit'], table[key]['hit'] + table[key]['miss'])}")
    for case in misses:
        print(f"  miss {case['repo']}@{case['buggy_commit'][:10]} {case['path']}:{case['line']} {case['code']}"
              f"  ({case['reason']})")
        if case.get("diagnosis"):
            print(f"       needs: {case['diagnosis']}")

    print(f"\nunreviewed findings: {len(new)}")
    if show_new:
        for repo, commit, path, line, code in new:
            print(f"  {repo} {commit} {path}:{line} {code}")
    return len(reported)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mirrors", type=Path, default=Path(os.environ.get("TORCHSANITY_MIRRORS", "/work/.mirror")))
    parser.add_argument("--manifest", type=Path, default=MANIFEST)
    parser.add_argument("--repo", action="append", help="only this repository (owner/name); repeatable")
    parser.add_argument("--show-new", action="store_true", help="list the findings nobody reviewed yet")
    parser.add_argument("--no-cache", action="store_true",
                        help="check every commit from scratch (slower; the default reuses the CLI's cache within the run)")
    args = parser.parse_args(argv)
    manifest = json.loads(args.manifest.read_text(encoding="utf-8"))
    if not args.mirrors.is_dir():
        print(f"skipped: no mirrors at {args.mirrors} (fetch the repositories of {args.manifest.name} first)")
        return 0
    if score(manifest, args.mirrors, set(args.repo) if args.repo else None, args.show_new, not args.no_cache) == 0:
        print(f"skipped: none of the manifest's repositories is mirrored under {args.mirrors}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
