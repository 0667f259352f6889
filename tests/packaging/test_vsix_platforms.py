"""The platform-specific VS Code packages (`npm run package:all`): each one opened as the zip it is, its bundled
wheels checked against its target (platform tag, CPython 3.10-3.13), and the launcher it ships asked which folder
it would run for every interpreter and platform. Also `vsce ls`: nothing ships that should not.

The packages are read from $TORCHSANITY_VSIX_DIR (scripts/test sets it after `npm run package:all`; then a missing
package fails), else from dist/ when all five are there; otherwise the package tests skip.
"""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import subprocess
import sys
import types
import zipfile
from fnmatch import fnmatch
from pathlib import Path

import pytest

from packaging_helpers import REPOSITORY, ROOT, package_version

sys.path.insert(0, str(ROOT / "extension" / "scripts"))
from bundle_python import TARGETS  # noqa: E402

PYTHONS = [(3, 10), (3, 11), (3, 12), (3, 13)]
# What the interpreter reports on each platform: sys.platform and platform.machine()
RUNNING_ON = {
    "linux-x64": ("linux", "x86_64"),
    "linux-arm64": ("linux", "aarch64"),
    "darwin-x64": ("darwin", "x86_64"),
    "darwin-arm64": ("darwin", "arm64"),
    "win32-x64": ("win32", "AMD64"),
}
# The wheel platform tags a target accepts, and the suffix of a native module built for CPython 3.XY there
WHEEL_PLATFORMS = {
    "linux-x64": r"manylinux\w*_x86_64",
    "linux-arm64": r"manylinux\w*_aarch64",
    "darwin-x64": r"macosx_\d+_\d+_(x86_64|universal2)",
    "darwin-arm64": r"macosx_\d+_\d+_(arm64|universal2)",
    "win32-x64": r"win_amd64",
}
NATIVE_SUFFIX = {
    "linux-x64": r"\.cpython-3{minor}-x86_64-linux-gnu\.so",
    "linux-arm64": r"\.cpython-3{minor}-aarch64-linux-gnu\.so",
    "darwin-x64": r"\.cpython-3{minor}-darwin\.so",
    "darwin-arm64": r"\.cpython-3{minor}-darwin\.so",
    "win32-x64": r"\.cp3{minor}-win_amd64\.pyd",
}
# Everything a package may hold, below its extension/ folder
SHIPPED = [
    "package.json", "readme.md", "changelog.md", "LICENSE.txt", "out/extension.js",
    "out/webview/chart.umd.min.js", "extension/media/icon.png", "extension/bundled/launch.py",
    "extension/bundled/platform.json", "extension/bundled/libs/*", "extension/bundled/tool/torchsanity/*",
    f"extension/bundled/tool/torchsanity-{package_version()}.dist-info/*",
]
NEVER = ["*/__pycache__/*", "*.pyc", "*.map", "*/tests/*", "*/test/*"]


def _package_dir() -> Path | None:
    if os.environ.get("TORCHSANITY_VSIX_DIR"):
        return Path(os.environ["TORCHSANITY_VSIX_DIR"])
    dist = ROOT / "dist"
    return dist if all((dist / f"torchsanity-{t}.vsix").exists() for t in TARGETS) else None


@pytest.fixture(scope="module", params=sorted(TARGETS))
def package(request):
    folder = _package_dir()
    if folder is None:
        pytest.skip("no platform packages: run `npm run package:all` (scripts/test does, then sets TORCHSANITY_VSIX_DIR)")
    path = folder / f"torchsanity-{request.param}.vsix"
    assert path.exists(), f"{path} is missing"
    with zipfile.ZipFile(path) as vsix:
        names = vsix.namelist()
        files = {name[len("extension/"):]: name for name in names if name.startswith("extension/")}
        read = {name: vsix.read(files[name]) for name in files if name.endswith(("/WHEEL", ".json", "launch.py"))}
        manifest = vsix.read("extension.vsixmanifest").decode()
    return types.SimpleNamespace(target=request.param, names=names, files=set(files), read=read, manifest=manifest)


def _libs(package) -> dict[str, set[str]]:
    """libs/ folder → the files in it, from the package's file list."""
    prefix = "extension/bundled/libs/"
    folders: dict[str, set[str]] = {}
    for name in package.files:
        if name.startswith(prefix):
            folder, _, rest = name[len(prefix):].partition("/")
            folders.setdefault(folder, set()).add(rest)
    return folders


def _wheel_tags(package, folder: str) -> dict[str, list[str]]:
    """dist-info → its WHEEL tags, for the wheels installed into libs/<folder>."""
    prefix = f"extension/bundled/libs/{folder}/"
    return {
        name[len(prefix):].split("/")[0]: re.findall(r"^Tag: (\S+)$", package.read[name].decode(), re.M)
        for name in package.read if name.startswith(prefix) and name.endswith(".dist-info/WHEEL")
    }


def _launcher(package) -> types.ModuleType:
    """The launch.py this package ships, loaded as a module (its main() is not run)."""
    module = types.ModuleType("shipped_launch")
    module.__file__ = "/nonexistent/extension/bundled/launch.py"
    exec(compile(package.read["extension/bundled/launch.py"], module.__file__, "exec"), module.__dict__)
    return module


def test_package_is_marked_for_its_platform_with_marketplace_metadata(package):
    assert f'TargetPlatform="{package.target}"' in package.manifest
    assert f'Version="{package_version()}"' in package.manifest
    assert "<Icon>extension/extension/media/icon.png</Icon>" in package.manifest
    assert "<License>extension/LICENSE.txt</License>" in package.manifest
    assert f'Value="{REPOSITORY}.git"' in package.manifest  # the repository / source links
    platform_json = json.loads(package.read["extension/bundled/platform.json"])
    assert platform_json["target"] == package.target and platform_json["tag"] == TARGETS[package.target]


def test_package_ships_only_what_the_extension_runs(package):
    outside = sorted(n for n in package.names if not n.startswith("extension/"))
    assert outside == ["[Content_Types].xml", "extension.vsixmanifest"]
    unexpected = sorted(f for f in package.files if not any(fnmatch(f, pattern) for pattern in SHIPPED))
    assert unexpected == []
    forbidden = sorted(f for f in package.files if any(fnmatch(f, pattern) for pattern in NEVER))
    assert forbidden == []
    for required in ("package.json", "readme.md", "changelog.md", "LICENSE.txt", "out/extension.js",
                     "extension/media/icon.png", "extension/bundled/tool/torchsanity/server/language_server.py"):
        assert required in package.files


def test_every_bundled_wheel_matches_the_target(package):
    libs = _libs(package)
    assert set(libs) == {"common"} | {f"cp3{minor}" for _, minor in PYTHONS}
    platform_tag = WHEEL_PLATFORMS[package.target]
    for _, minor in PYTHONS:
        folder = f"cp3{minor}"
        tags = _wheel_tags(package, folder)
        assert any(name.startswith("libcst-") for name in tags), f"{folder}: no libcst"
        for dist_info, wheel_tags in tags.items():
            assert wheel_tags, dist_info
            for tag in wheel_tags:
                assert re.fullmatch(rf"(cp3{minor}-cp3{minor}|cp3\d+-abi3)-{platform_tag}", tag) or \
                    tag.endswith("-none-any"), f"{folder}/{dist_info}: {tag} is not for {package.target}"
        natives = [f for f in libs[folder] if f.endswith((".so", ".pyd"))]
        assert any(f.startswith("libcst/") for f in natives)
        suffix = NATIVE_SUFFIX[package.target].format(minor=minor)
        wrong = [f for f in natives if not re.search(suffix + "$", f)]
        assert wrong == [], f"{folder}: native modules not built for {package.target} / CPython 3.{minor}"
    # the pure-Python dependencies: one copy, no native code
    common = _wheel_tags(package, "common")
    assert {name.split("-")[0] for name in common} >= {"pygls", "lsprotocol", "cattrs", "attrs", "rich"}
    assert all(tag.endswith("-none-any") for tags in common.values() for tag in tags)
    assert not [f for f in libs["common"] if f.endswith((".so", ".pyd", ".dylib", ".dll"))]


def test_shipped_launcher_picks_the_folder_for_each_interpreter(package):
    launcher = _launcher(package)
    folders = sorted(_libs(package))
    target = json.loads(package.read["extension/bundled/platform.json"])
    sys_platform, machine = RUNNING_ON[package.target]
    for version in PYTHONS:
        folder, problem = launcher.select_libs(folders, target, sys_platform, machine, version + (0,))
        assert (folder, problem) == (f"cp3{version[1]}", None)
        # and that folder holds the wheels built for exactly this interpreter
        tags = [t for ts in _wheel_tags(package, folder).values() for t in ts if not t.endswith("-none-any")]
        assert tags and all(t.startswith(f"cp3{version[1]}-") for t in tags)
    for version in ((3, 9, 0), (3, 14, 0)):
        folder, problem = launcher.select_libs(folders, target, sys_platform, machine, version)
        assert folder is None and f"Python 3.{version[1]} is not supported" in problem and "3.10, 3.11, 3.12, 3.13" in problem
    for other, (other_platform, other_machine) in RUNNING_ON.items():
        if other == package.target:
            continue
        folder, problem = launcher.select_libs(folders, target, other_platform, other_machine, (3, 12, 0))
        assert folder is None and package.target in problem and "install the package for your platform" in problem


def test_launcher_runs_the_server_from_the_host_package(tmp_path):
    # the same selection, for real: the package for this machine, under this interpreter, reports its version
    folder = _package_dir()
    host = {v: k for k, v in RUNNING_ON.items()}.get((sys.platform, platform.machine()))
    if folder is None or host is None:
        pytest.skip("no package for this machine")
    with zipfile.ZipFile(folder / f"torchsanity-{host}.vsix") as vsix:
        vsix.extractall(tmp_path, [n for n in vsix.namelist() if n.startswith("extension/extension/bundled/")])
    launch = tmp_path / "extension" / "extension" / "bundled" / "launch.py"
    result = subprocess.run([sys.executable, "-I", str(launch), "--version"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"torchsanity {package_version()}"


def _vsce() -> str | None:
    return shutil.which("vsce", path=str(ROOT / "node_modules" / ".bin"))


@pytest.mark.skipif(_vsce() is None and not os.environ.get("TORCHSANITY_VSIX_DIR"), reason="node_modules not installed")
@pytest.mark.timeout(300)
def test_vsce_ls_lists_only_what_ships():
    assert _vsce(), "vsce not installed (npm ci)"
    result = subprocess.run([_vsce(), "ls", "--no-dependencies", "--readme-path", "extension/README.md"],
                            cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr
    listed = set(result.stdout.split())
    allowed = ["package.json", "LICENSE", "CHANGELOG.md", "extension/README.md", "extension/media/icon.png",
               "out/extension.js", "out/webview/chart.umd.min.js", "extension/bundled/launch.py",
               "extension/bundled/platform.json", "extension/bundled/libs/*", "extension/bundled/tool/*"]
    assert sorted(f for f in listed if not any(fnmatch(f, pattern) for pattern in allowed)) == []
    assert sorted(f for f in listed if any(fnmatch(f, pattern) for pattern in NEVER)) == []
    assert {"package.json", "LICENSE", "CHANGELOG.md", "extension/README.md", "extension/media/icon.png"} <= listed


def test_packaging_needs_no_escape_hatches():
    manifest = json.loads((ROOT / "package.json").read_text(encoding="utf-8"))
    scripts = json.dumps(manifest["scripts"]) + (ROOT / "extension" / "scripts" / "package_vsix.py").read_text()
    for flag in ("--allow-missing-repository", "--skip-license", "--allow-star-activation"):
        assert flag not in scripts
    assert manifest["scripts"]["package:all"].endswith("package_vsix.py --all")
    assert manifest["repository"]["url"] == REPOSITORY + ".git" and manifest["bugs"]["url"] == REPOSITORY + "/issues"
    icon = (ROOT / manifest["icon"]).read_bytes()
    assert icon[:8] == b"\x89PNG\r\n\x1a\n" and icon[16:24] == (128).to_bytes(4, "big") * 2  # 128x128
