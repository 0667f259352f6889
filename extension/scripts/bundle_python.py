#!/usr/bin/env python3
"""Build extension/bundled/: the language server and everything it imports, for CPython 3.10-3.13 on linux-x64.

    python3 extension/scripts/bundle_python.py [--platform manylinux2014_x86_64] [--pythons 3.10,3.11,3.12,3.13]

Layout (see extension/python/launch.py, which picks the native folder for the running interpreter):

    bundled/launch.py
    bundled/tool/torchsanity/{analyzers,server,probes}   copied from the repository (pyproject's package-dir)
    bundled/tool/torchsanity-<version>.dist-info/        so importlib.metadata.version("torchsanity") works
    bundled/libs/common/                                 pure-Python dependencies (one copy)
    bundled/libs/cp3XY/                                  libcst (native) and its own dependencies, per version

Wheels come from the package index with `pip install --target --only-binary=:all: --platform --python-version`,
so this runs on any machine with pip, for any target: pass e.g. `--platform macosx_11_0_arm64` and package with
`vsce package --target darwin-arm64` (and adjust launch.py's platform check).  Re-running only refreshes what
changed: the dependency folders are rebuilt when the pins below change, the torchsanity sources every time.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "extension" / "bundled"

# Versions known to work together; kept within pyproject.toml's ranges.
NATIVE = ["libcst==1.5.1"]
PURE = [
    "pygls==2.1.1",
    "lsprotocol==2025.0.0",
    "cattrs==26.2.1",
    "attrs==26.1.0",
    "typing_extensions==4.16.0",
    "rich==15.0.0",
    "tomli>=2.0",  # tomllib for 3.10
    "exceptiongroup>=1.2",  # cattrs on 3.10
]
# What libcst drags in that is already in common/ (don't ship it twice).
NATIVE_DROP = {"typing_extensions"}


def pip(*args: str) -> None:
    cmd = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input", *args]
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)


def install_deps(target: Path, reqs: list[str], python: str, platform: str) -> None:
    if target.exists():
        shutil.rmtree(target)
    pip(
        "install", "--quiet", "--target", str(target), "--only-binary=:all:", "--implementation", "cp",
        "--platform", platform, "--python-version", python, "--no-compile", *reqs,
    )
    for junk in target.glob("bin"):
        shutil.rmtree(junk)
    # libcst's own test suites are a third of its size and never imported
    for tests in sorted(target.glob("libcst/**/tests"), reverse=True):
        shutil.rmtree(tests, ignore_errors=True)


def project_meta() -> tuple[str, dict[str, str]]:
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    try:
        import tomllib

        data = tomllib.loads(text)
        version = data["project"]["version"]
        package_dir = data["tool"]["setuptools"]["package-dir"]
    except ModuleNotFoundError:  # Python 3.10 without tomli: the two keys are simple enough
        version = re.search(r'^version\s*=\s*"([^"]+)"', text, re.M).group(1)
        package_dir = dict(re.findall(r'"(torchsanity\.\w+)"\s*=\s*"([^"]+)"', text))
    return version, package_dir


def copy_sources(tool: Path) -> str:
    version, package_dir = project_meta()
    if tool.exists():
        shutil.rmtree(tool)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.pyo", ".pytest_cache")
    for module, folder in package_dir.items():
        parts = module.split(".")
        src = ROOT / folder
        if not src.is_dir():
            raise SystemExit(f"bundle_python: {src} (package {module}) is missing")
        shutil.copytree(src, tool.joinpath(*parts), ignore=ignore)
    dist = tool / f"torchsanity-{version}.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: torchsanity\nVersion: {version}\n", encoding="utf-8"
    )
    (dist / "top_level.txt").write_text("torchsanity\n", encoding="utf-8")
    return version


def platform_of(tag: str) -> dict:
    """What launch.py checks at start: sys.platform prefix and platform.machine() values of a wheel tag."""
    tag = tag.lower()
    if tag.startswith(("manylinux", "musllinux", "linux")):
        system = "linux"
    elif tag.startswith("macosx"):
        system = "darwin"
    elif tag.startswith("win"):
        system = "win32"
    else:
        raise SystemExit(f"bundle_python: unknown platform tag {tag}")
    if tag.endswith(("x86_64", "amd64")):
        machines = ["x86_64", "amd64"]
    elif tag.endswith(("aarch64", "arm64")):
        machines = ["aarch64", "arm64"]
    elif tag.endswith("universal2"):
        machines = ["x86_64", "arm64"]
    else:
        machines = [tag.rsplit("_", 1)[-1]]
    return {"tag": tag, "sys_platform": system, "machines": machines}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--platform", default="manylinux2014_x86_64")
    parser.add_argument("--pythons", default="3.10,3.11,3.12,3.13")
    parser.add_argument("--force", action="store_true", help="rebuild the dependency folders")
    args = parser.parse_args()
    pythons = [p.strip() for p in args.pythons.split(",") if p.strip()]

    OUT.mkdir(parents=True, exist_ok=True)
    libs = OUT / "libs"
    key = hashlib.sha256(json.dumps([NATIVE, PURE, args.platform, pythons]).encode()).hexdigest()
    stamp = libs / ".stamp"
    if args.force or not stamp.exists() or stamp.read_text() != key:
        if libs.exists():
            shutil.rmtree(libs)
        install_deps(libs / "common", PURE, pythons[0], args.platform)
        for py in pythons:
            folder = libs / ("cp" + py.replace(".", ""))
            install_deps(folder, NATIVE, py, args.platform)
            for name in NATIVE_DROP:
                for path in list(folder.glob(name + "*")) + list(folder.glob(name + ".py")):
                    shutil.rmtree(path) if path.is_dir() else path.unlink()
        stamp.write_text(key)
    else:
        print("bundle_python: dependencies up to date", flush=True)

    version = copy_sources(OUT / "tool")
    shutil.copy2(ROOT / "extension" / "python" / "launch.py", OUT / "launch.py")
    (OUT / "platform.json").write_text(json.dumps(platform_of(args.platform)) + "\n", encoding="utf-8")
    # bytecode written by anyone who ran Python on the folder: never ship it (.vscodeignore cannot exclude
    # inside a re-included folder)
    for cache in sorted(OUT.rglob("__pycache__"), reverse=True):
        shutil.rmtree(cache, ignore_errors=True)
    size = sum(f.stat().st_size for f in OUT.rglob("*") if f.is_file())
    print(f"bundle_python: torchsanity {version} for CPython {', '.join(pythons)} ({args.platform}) "
          f"in {OUT.relative_to(ROOT)} ({size / 1e6:.1f} MB)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
