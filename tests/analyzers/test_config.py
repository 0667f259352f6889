"""`[tool.torchsanity]`: select / extend-select / ignore by prefix, per-file-ignores, exclude, severity."""

from torchsanity.analyzers import Config, ConfigError, Severity

import pytest


def test_prefixes_and_extend_select(tmp_path):
    config = Config.from_table({"select": ["SAN1"], "extend-select": ["SAN601"], "ignore": ["SAN106"]}, root=tmp_path)
    assert config.is_enabled("SAN101") and config.is_enabled("SAN601")
    assert not config.is_enabled("SAN106") and not config.is_enabled("SAN201")


def test_per_file_ignores_exclude_and_severity(tmp_path):
    config = Config.from_table(
        {"per-file-ignores": {"notebooks/*": ["SAN401"]}, "exclude": ["old/"], "severity": {"SAN504": "info"}},
        root=tmp_path,
    )
    assert not config.is_enabled("SAN401", tmp_path / "notebooks" / "a.py")
    assert config.is_enabled("SAN401", tmp_path / "train.py")
    assert config.is_excluded(tmp_path / "old" / "train.py") and not config.is_excluded(tmp_path / "train.py")
    assert config.severity_for("SAN504", Severity.WARNING) is Severity.INFO


def test_discover_reads_the_nearest_pyproject(tmp_path):
    (tmp_path / "pyproject.toml").write_text('[tool.torchsanity]\nignore = ["SAN802"]\n')
    (tmp_path / "pkg").mkdir()
    assert not Config.discover(tmp_path / "pkg" / "train.py").is_enabled("SAN802")


def test_bad_configuration_says_where(tmp_path):
    (tmp_path / "pyproject.toml").write_text('[tool.torchsanity]\nselcet = ["SAN1"]\n')
    with pytest.raises(ConfigError, match="selcet"):
        Config.discover(tmp_path / "train.py")
