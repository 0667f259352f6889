"""The settings have one declaration each: package.json's ``contributes.configuration`` (what VS Code shows and
forwards unvalidated) must list exactly the keys the language server knows (``lsp_settings``), with the same
defaults and allowed values. A setting added on one side only, or a value one side accepts and the other
rejects, fails here."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from torchsanity.probes.checks import CHECK_IDS
from torchsanity.server.lsp_probe import ProbeParams
from torchsanity.server.lsp_settings import (
    CLIENT_SETTINGS,
    SECTION,
    SERVER_SETTINGS,
    Settings,
)

ROOT = Path(__file__).resolve().parents[2]


def _declared() -> dict[str, dict]:
    manifest = json.loads((ROOT / "package.json").read_text(encoding="utf-8"))
    properties = manifest["contributes"]["configuration"]["properties"]
    return {key.removeprefix(f"{SECTION}."): spec for key, spec in properties.items()}


def _enum(spec: dict) -> tuple[str, ...]:
    """The allowed values of a string setting, of the items of a list, or of the values of a map."""
    for inner in (spec, spec.get("items", {}), spec.get("additionalProperties", {})):
        if "enum" in inner:
            return tuple(inner["enum"])
    return ()


def test_package_json_declares_exactly_the_known_settings():
    declared = set(_declared())
    known = {s.key for s in SERVER_SETTINGS} | set(CLIENT_SETTINGS)
    assert declared - known == set(), "declared in package.json but unknown to the server (lsp_settings)"
    assert known - declared == set(), "known to the server (lsp_settings) but not declared in package.json"
    assert not {s.key for s in SERVER_SETTINGS} & set(CLIENT_SETTINGS)


@pytest.mark.parametrize("setting", SERVER_SETTINGS, ids=lambda s: s.key)
def test_server_settings_have_the_declared_default_and_values(setting):
    spec = _declared()[setting.key]
    assert spec["default"] == setting.default
    assert _enum(spec) == setting.choices
    assert spec.get("scope") == "resource", "server settings may differ per workspace folder"
    # the declared default parses without a problem, and so does every declared value
    assert Settings.from_json({setting.key: spec["default"]}).problems == ()
    for value in setting.choices:
        sample = {"SAN504": value} if setting.key == "severity" else value
        assert Settings.from_json({setting.key: sample}).problems == (), value


def test_the_whole_default_section_parses_cleanly_nested_as_vscode_sends_it():
    """VS Code's ``workspace/configuration`` answer for the section: dotted keys nested (``probe: {...}``)."""
    section: dict = {}
    for key, spec in _declared().items():
        group, _, leaf = key.rpartition(".")
        (section.setdefault(group, {}) if group else section)[leaf] = spec["default"]
    settings = Settings.from_json(section)
    assert settings.problems == ()
    assert settings == Settings()


def test_unknown_and_invalid_values_are_reported_and_replaced_by_defaults():
    settings = Settings.from_json(
        {"debounce_ms": 10, "severity": {"SAN401": "hint", "SAN703": "off", "SAN5": "error"}, "codeLens": "no"}
    )
    assert settings.debounce_ms == 250 and settings.code_lens is True
    assert settings.severity == () and settings.ignore == ("SAN703",)
    text = "\n".join(settings.problems)
    assert "unknown setting `torchsanity.debounce_ms`" in text
    assert "'hint' is not one of error, warning, info, off" in text
    assert "'SAN5' is not a rule code" in text
    assert "`torchsanity.codeLens` must be true or false" in text


def test_probe_settings_accept_what_the_run_probe_request_accepts():
    """``probe.*`` are forwarded raw in ``torchsanity/runProbe``; the server's request parser decides."""
    declared = _declared()
    assert _enum(declared["probe.checks"]) == tuple(CHECK_IDS)
    base = {"uri": "file:///tmp/train.py"}
    for device in _enum(declared["probe.device"]):
        assert ProbeParams.parse({**base, "device": device}).device == device
    parsed = ProbeParams.parse(
        {
            **base,
            "args": declared["probe.args"]["default"],
            "checks": list(_enum(declared["probe.checks"])),
            "timeout": declared["probe.timeout"]["default"],
            "device": declared["probe.device"]["default"],
        }
    )
    assert parsed.timeout == declared["probe.timeout"]["default"]
    with pytest.raises(Exception, match="device"):
        ProbeParams.parse({**base, "device": "tpu"})


def test_the_neovim_guide_documents_every_server_setting():
    guide = (ROOT / "docs" / "neovim.md").read_text(encoding="utf-8")
    section = guide[guide.index("## Settings (section `torchsanity`)") :].splitlines()[1:]
    rows = section[: section.index("", section.index("| key | default | meaning |"))]
    documented = {row.split("|")[1].strip().strip("`") for row in rows if row.startswith("| `")}
    assert documented == {s.key for s in SERVER_SETTINGS}


@pytest.mark.parametrize("key", ["watch.every", "watch.steps", "watch.epochs", "watch.timeout"])
def test_watch_settings_accept_exactly_what_package_json_allows(key):
    """``watch.*`` are server settings (the defaults of ``torchsanity/watch``): what VS Code's schema lets through
    parses, what it refuses is reported and replaced by null (the runner's default / no limit)."""
    spec = _declared()[key]
    assert spec["default"] is None and "null" in spec["type"]
    field = "watch_" + key.split(".", 1)[1]
    whole = "integer" in spec["type"]
    lowest = spec["minimum"] if whole else 0.5
    good = Settings.from_json({"watch": {key.split(".", 1)[1]: lowest}})
    assert good.problems == () and getattr(good, field) == lowest
    too_low = spec["minimum"] - 1 if whole else spec["exclusiveMinimum"]
    for bad in (too_low, "3", True) + ((2.5,) if whole else ()):
        parsed = Settings.from_json({key: bad})
        assert getattr(parsed, field) is None and any(f"`torchsanity.{key}`" in p for p in parsed.problems), bad
