"""One version and one set of project URLs: the Python package, the extension manifest, the changelog and the
extension's bundled server all say the same."""

from __future__ import annotations

import json
import re
import subprocess
import sys

from packaging_helpers import REPOSITORY, ROOT, package_version

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - 3.10
    import tomli as tomllib

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
MANIFEST = json.loads((ROOT / "package.json").read_text(encoding="utf-8"))


def test_pyproject_reads_the_version_from_the_package():
    project = PYPROJECT["project"]
    assert "version" not in project and "version" in project["dynamic"]
    assert PYPROJECT["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "torchsanity.server.__version__"}
    assert re.fullmatch(r"\d+\.\d+\.\d+", package_version())


def test_extension_and_changelog_carry_the_package_version():
    version = package_version()
    assert MANIFEST["version"] == version
    changelog = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    assert re.search(r"^## \[(.+?)\]", changelog, re.M).group(1) == version


def test_bundled_server_reports_the_package_version():
    # bundle_python.py writes the bundled dist-info from the same source
    result = subprocess.run(
        [sys.executable, "-c", "import sys; sys.path.insert(0, 'extension/scripts'); import bundle_python; "
         "print(bundle_python.project_meta()[0])"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    )
    assert result.stdout.strip() == package_version()


def test_project_urls_and_licence_agree():
    urls = PYPROJECT["project"]["urls"]
    assert urls["Homepage"] == urls["Repository"] == REPOSITORY
    assert urls["Issues"] == MANIFEST["bugs"]["url"] == REPOSITORY + "/issues"
    assert MANIFEST["repository"]["url"] == REPOSITORY + ".git"
    assert MANIFEST["homepage"].startswith(REPOSITORY)
    assert PYPROJECT["project"]["license"] == MANIFEST["license"] == "MIT"
    assert (ROOT / "LICENSE").read_text(encoding="utf-8").startswith("MIT License")
    # the rule pages the CLI links to live in the same repository
    from torchsanity.analyzers import docs_url

    assert docs_url("SAN101").startswith(REPOSITORY + "/")
