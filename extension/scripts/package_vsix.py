#!/usr/bin/env python3
"""Package the extension for VS Code platforms: bundle that platform's Python dependencies, then `vsce package`.

    python3 extension/scripts/package_vsix.py linux-x64       # npm run package     → dist/torchsanity-linux-x64.vsix
    python3 extension/scripts/package_vsix.py --all           # npm run package:all → one .vsix per platform

Run after `npm run build` (out/ must hold the bundled JavaScript). With --all the host's platform is packaged last,
so extension/bundled/ is left runnable on this machine (the TypeScript tests start the bundled server).
"""

from __future__ import annotations

import argparse
import platform
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bundle_python import ROOT, TARGETS  # noqa: E402

DIST = ROOT / "dist"


def host_target() -> str | None:
    """The VS Code platform name of this machine, if it is one we build."""
    machine = platform.machine().lower()
    arch = {"x86_64": "x64", "amd64": "x64", "aarch64": "arm64", "arm64": "arm64"}.get(machine)
    system = "win32" if sys.platform == "win32" else sys.platform.rstrip("0123456789")
    name = f"{system}-{arch}"
    return name if name in TARGETS else None


def vsce() -> str:
    found = shutil.which("vsce") or shutil.which("vsce", path=str(ROOT / "node_modules" / ".bin"))
    if not found:
        raise SystemExit("package_vsix: vsce not found; run `npm ci` first")
    return found


def package(target: str) -> Path:
    out = DIST / f"torchsanity-{target}.vsix"
    subprocess.run([sys.executable, str(ROOT / "extension" / "scripts" / "bundle_python.py"), "--target", target],
                   check=True, cwd=ROOT)
    subprocess.run([vsce(), "package", "--no-dependencies", "--readme-path", "extension/README.md",
                    "--target", target, "--out", str(out)], check=True, cwd=ROOT)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("targets", nargs="*", metavar="TARGET", help="VS Code platforms: " + ", ".join(TARGETS))
    parser.add_argument("--all", action="store_true", help="every platform in TARGETS")
    args = parser.parse_args()
    targets = list(TARGETS) if args.all else args.targets
    if not targets:
        parser.error("name a TARGET or pass --all")
    unknown = [t for t in targets if t not in TARGETS]
    if unknown:
        parser.error(f"unknown target {', '.join(unknown)} (choose from {', '.join(TARGETS)})")
    host = host_target()
    targets = sorted(dict.fromkeys(targets), key=lambda t: t == host)  # the host's package last
    DIST.mkdir(exist_ok=True)
    built = [package(target) for target in targets]
    for path in built:
        print(f"package_vsix: {path.relative_to(ROOT)} ({path.stat().st_size / 1e6:.1f} MB)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
