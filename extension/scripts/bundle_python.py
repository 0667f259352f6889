#!/usr/bin/env python3
"""Build extension/bundled/: the language server and everything it imports, for CPython 3.10-3.13 on one platform.

    python3 extension/scripts/bundle_python.py [--target linux-x64] [--pythons 3.10,3.11,3.12,3.13]

`--target` is a VS Code platform (see TARGETS); `npm run package:all` (extension/scripts/package_vsix.py) runs this
for each and packages the result with `vsce package --target`. Layout (extension/python/launch.py picks the native
folder for the running interpreter and refuses a platform the package was not built for):

    bundled/launch.py
    bundled/platform.json                                the target: VS Code name, wheel tag, sys.platform, machines
    bundled/tool/torchsanity/{analyzers,server,probes}   copied from the repository (pyproject's package-dir)
    bundled/tool/torchsanity-<version>.dist-info/        so importlib.metadata.version("torchsanity") works
    bundled/libs/common/                                 pure-Python dependencies (one copy)
    bundled/libs/cp3XY/                                  libcst (native) and its own dependencies, per version

Wheels come from the package index with `pip install --target --only-binary=:all: --platform --python-version`,
so this runs on any machine with pip, for any target. The dependency folders of each target are kept in
build/bundled-libs/<wheel tag>/ and rebuilt only when the pins below change; the torchsanity sources are copied
every time.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "extension" / "bundled"
CACHE = ROOT / "build" / "bundled-libs"

# VS Code platform → the pip platform tag whose wheels it bundles (pip also accepts older compatible tags:
# manylinux2014 takes manylinux1/2010 wheels, macosx_11_0 takes 10.x wheels).
TARGETS = {
    "linux-x64": "manylinux2014_x86_64",
    "linux-arm64": "manylinux2014_aarch64",
    "darwin-x64": "macosx_11_0_x86_64",
    "darwin-arm64": "macosx_11_0_arm64",
    "win32-x64": "win_amd64",
}
PYTHONS = ["3.10", "3.11", "3.12", "3.13"]

# Versions known to work together; kept within pyproject.toml's ranges.
NATIVE = ["libcst==1.5.1"]
PURE = [
    "pygls==2.1.1",
    "lsprotocol==2025.0.0",
    "cattrs==26.2.1",
    "attrs==26.1.0",
    "typing_extensions==4.16.0",
    "rich==15.0.0",
    "pathspec==1.1.1",
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
    """The version (torchsanity.server.__version__, the one version source) and pyproject's package-dir."""
    version = re.search(r'^__version__ = "([^"]+)"$', (ROOT / "server" / "__init__.py").read_text(encoding="utf-8"),
                        re.M).group(1)
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    try:
        import tomllib

        package_dir = tomllib.loads(text)["tool"]["setuptools"]["package-dir"]
    except ModuleNotFoundError:  # Python 3.10 without tomli: the table is simple enough
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


def platform_of(tag: str, target: str | None = None) -> dict:
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
    return {"target": target, "tag": tag, "sys_platform": system, "machines": machines}


def build_libs(platform: str, pythons: list[str], force: bool) -> Path:
    """The dependency folders for one platform, in the cache; rebuilt when the pins change."""
    libs = CACHE / platform
    key = hashlib.sha256(json.dumps([NATIVE, PURE, platform, pythons]).encode()).hexdigest()
    stamp = libs / ".stamp"
    if not force and stamp.exists() and stamp.read_text() == key:
        print(f"bundle_python: dependencies for {platform} up to date", flush=True)
        return libs
    if libs.exists():
        shutil.rmtree(libs)
    install_deps(libs / "common", PURE, pythons[0], platform)
    for py in pythons:
        folder = libs / ("cp" + py.replace(".", ""))
        install_deps(folder, NATIVE, py, platform)
        for name in NATIVE_DROP:
            for path in list(folder.glob(name + "*")) + list(folder.glob(name + ".py")):
                shutil.rmtree(path) if path.is_dir() else path.unlink()
    stamp.write_text(key)
    return libs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--target", choices=sorted(TARGETS), help="VS Code platform (default linux-x64)")
    where.add_argument("--platform", help="a pip platform tag instead, e.g. manylinux2014_x86_64")
    parser.add_argument("--pythons", default=",".join(PYTHONS))
    parser.add_argument("--force", action="store_true", help="rebuild the dependency folders")
    args = parser.parse_args()
    pythons = [p.strip() for p in args.pythons.split(",") if p.strip()]
    target = args.target or (None if args.platform else "linux-x64")
    platform = args.platform or TARGETS[target]

    libs = build_libs(platform, pythons, args.force)
    OUT.mkdir(parents=True, exist_ok=True)
    if (OUT / "libs").exists():
        shutil.rmtree(OUT / "libs")
    shutil.copytree(libs, OUT / "libs", ignore=shutil.ignore_patterns(".stamp"))
    version = copy_sources(OUT / "tool")
    shutil.copy2(ROOT / "extension" / "python" / "launch.py", OUT / "launch.py")
    (OUT / "platform.json").write_text(json.dumps(platform_of(platform, target)) + "\n", encoding="utf-8")
    # bytecode written by anyone who ran Python on the folder: never ship it (.vscodeignore cannot exclude
    # inside a re-included folder)
    for cache in sorted(OUT.rglob("__pycache__"), reverse=True):
        shutil.rmtree(cache, ignore_errors=True)
    size = sum(f.stat().st_size for f in OUT.rglob("*") if f.is_file())
    print(f"bundle_python: torchsanity {version} for CPython {', '.join(pythons)} ({platform}) "
          f"in {OUT.relative_to(ROOT)} ({size / 1e6:.1f} MB)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
