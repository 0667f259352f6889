"""The real-code benchmark's own parts: its manifest stays well formed, notebooks keep their line numbers,
commits are extracted from a real git directory, and the script skips cleanly without mirrors."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
import bench_realcode  # noqa: E402

SHA = re.compile(r"^[0-9a-f]{40}$")
CODE = re.compile(r"^SAN\d{3}$")


def test_manifest_is_well_formed():
    manifest = json.loads(bench_realcode.MANIFEST.read_text(encoding="utf-8"))
    repos = manifest["repos"]
    assert all(SHA.match(info["commit"]) for info in repos.values())
    seen = set()
    for finding in manifest["findings"]:
        assert finding["repo"] in repos
        assert SHA.match(finding["commit"]) and CODE.match(finding["code"])
        assert finding["verdict"] in ("TP", "FP") and finding["reason"].strip()
        assert isinstance(finding["line"], int) and finding["line"] > 0 and not finding["path"].startswith("/")
        key = (finding["repo"], finding["commit"], finding["path"], finding["line"], finding["code"])
        assert key not in seen, key
        seen.add(key)
    for case in manifest["recall"]:
        assert case["repo"] in repos
        assert SHA.match(case["buggy_commit"]) and SHA.match(case["fix_commit"]) and CODE.match(case["code"])
        assert isinstance(case["line"], int) and case["reason"].strip()
        key = ("recall", case["repo"], case["buggy_commit"], case["path"], case["line"], case["code"])
        assert key not in seen, key
        seen.add(key)
    for entry in [*manifest["findings"], *manifest["recall"]]:
        assert entry.get("diagnosis", "x").strip(), entry  # optional, never empty


def test_notebook_script_keeps_cell_lines_and_comments_magics():
    notebook = {"cells": [
        {"cell_type": "markdown", "source": ["# Title\n"]},
        {"cell_type": "code", "source": ["%matplotlib inline\n", "import torch\n"]},
        {"cell_type": "code", "source": "for x in loader:\n    !nvidia-smi\n    model(x)"},
    ]}
    script = bench_realcode.notebook_script(json.dumps(notebook)).splitlines()
    assert script == ["# %matplotlib inline", "import torch", "", "for x in loader:", "#     !nvidia-smi",
                      "    model(x)", ""]
    assert bench_realcode.notebook_script("not json") == ""


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_extract_writes_python_files_and_notebooks_of_a_commit(tmp_path):
    work = tmp_path / "work"
    (work / "pkg").mkdir(parents=True)
    (work / "pkg" / "train.py").write_text("import torch\n", encoding="utf-8")
    (work / "demo.ipynb").write_text(json.dumps({"cells": [{"cell_type": "code", "source": ["x = 1\n"]}]}),
                                     encoding="utf-8")
    (work / "data.csv").write_text("a,b\n", encoding="utf-8")
    git = ["git", "-C", str(work), "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run(["git", "init", "-q", str(work)], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "init"], check=True)
    commit = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()

    out = tmp_path / "out"
    out.mkdir()
    assert bench_realcode.extract(work / ".git", commit, out) == 2
    assert (out / "pkg" / "train.py").read_text(encoding="utf-8") == "import torch\n"
    assert (out / "demo.ipynb.py").read_text(encoding="utf-8") == "x = 1\n\n"
    assert not (out / "data.csv").exists()


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_checkout_replaces_the_previous_commit(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    git = ["git", "-C", str(work), "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run(["git", "init", "-q", str(work)], check=True)
    commits = []
    for files in ({"a.py": "x = 1\n", "b.py": "y = 2\n"}, {"a.py": "x = 3\n"}):
        for old in work.glob("*.py"):
            old.unlink()
        for name, text in files.items():
            (work / name).write_text(text, encoding="utf-8")
        subprocess.run([*git, "add", "-A"], check=True)
        subprocess.run([*git, "commit", "-q", "-m", "c"], check=True)
        commits.append(subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip())

    tree = tmp_path / "tree"
    assert bench_realcode.checkout(work / ".git", commits[0], tree) == 2
    assert bench_realcode.checkout(work / ".git", commits[1], tree) == 1
    assert sorted(p.name for p in tree.iterdir()) == ["a.py"]
    assert (tree / "a.py").read_text(encoding="utf-8") == "x = 3\n"


def test_skips_with_a_message_without_mirrors(tmp_path):
    script = HERE / "bench_realcode.py"
    absent = subprocess.run([sys.executable, str(script), "--mirrors", str(tmp_path / "none")],
                            capture_output=True, text=True, timeout=120)
    assert absent.returncode == 0 and absent.stdout.startswith("skipped: no mirrors at")
    empty = subprocess.run([sys.executable, str(script), "--mirrors", str(tmp_path)],
                           capture_output=True, text=True, timeout=120)
    assert empty.returncode == 0 and "skipped: none of the manifest's repositories is mirrored" in empty.stdout
