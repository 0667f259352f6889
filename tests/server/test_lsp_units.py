"""The server's pure helpers: position encodings, line splitting, minimal edits, notebook mapping,
settings parsing, the worker's garbage collection schedule, the analysing process' projects. (Everything
else is tested through the real server.)"""

from __future__ import annotations

import gc
import time

import pytest
from lsprotocol import types

from lsp_helpers import apply_text_edits
from torchsanity.analyzers import Position
from torchsanity.server.lsp_notebook import combine
from torchsanity.server.lsp_positions import LineIndex, column_from_units, minimal_edit, split_lines, units
from torchsanity.server.lsp_settings import Settings
from torchsanity.server.lsp_worker import IdleCollector

LINE = 'a = "🔥損失x"; b'


@pytest.mark.parametrize(
    "encoding, expected",
    [
        ("utf-16", [0, 1, 2, 3, 4, 5, 7, 8, 9, 10, 11, 12, 13, 14]),  # the emoji is a surrogate pair
        ("utf-8", [0, 1, 2, 3, 4, 5, 9, 12, 15, 16, 17, 18, 19, 20]),  # 4 bytes, then 3 per CJK character
        ("utf-32", list(range(14))),
    ],
)
def test_units_and_back(encoding: str, expected: list[int]):
    assert [units(LINE[:i], encoding) for i in range(len(LINE) + 1)] == expected
    for column, count in enumerate(expected):
        assert column_from_units(LINE, count, encoding) == column
    # A position inside a character rounds down; past the end clamps.
    if encoding == "utf-16":
        assert column_from_units(LINE, 6, encoding) == 5
    assert column_from_units(LINE, 999, encoding) == len(LINE)


def test_line_index_round_trip_and_clamping():
    text = "x = 1\r\n" + LINE + "\n\x0cy = 2\u2028z\n"
    index = LineIndex(text)
    assert index.lines == ["x = 1", LINE, "\x0cy = 2\u2028z", ""]
    assert index.to_client(Position(2, 6)) == types.Position(line=1, character=7)
    assert index.from_client(types.Position(line=1, character=7)) == Position(2, 6)
    assert index.to_client(Position(99, 0)) == types.Position(line=3, character=0)
    assert index.from_client(types.Position(line=99, character=99)) == Position(4, 0)
    assert split_lines("a\rb\r\nc") == ["a", "b", "c"]
    assert index.offset(Position(2, 0)) == len("x = 1\r\n")
    assert index.position_at(len("x = 1\r\n") + 3) == Position(2, 3)


@pytest.mark.parametrize(
    "old, new",
    [
        ("a\nb\nc\n", "a\nB\nc\n"),
        ("a\nb\nc\n", "a\nb\nc\nd\n"),
        ("x = 🔥\ny\n", "x = 🔥🔥\ny\n"),
        ("import torch\nopt = Adam()\n", "import torch\nopt = AdamW()\n"),
        ("abc", ""),
        ("", "abc\n"),
    ],
)
def test_minimal_edit_applies(old: str, new: str):
    edit = minimal_edit(old, new, LineIndex(old))
    assert edit is not None
    assert apply_text_edits(old, [edit]) == new
    assert edit.range.start.character == 0  # starts at a line start
    assert minimal_edit(new, new, LineIndex(new)) is None


def test_notebook_combine_maps_lines_and_splits_back():
    cells = [
        ("c0", "import torch\n"),
        ("c1", "%%bash\necho hi\n"),
        ("c2", "%matplotlib inline\n!pip install x\nfor x in y:\n    pass"),
    ]
    nb = combine(cells)
    lines = nb.text.split("\n")
    assert lines[0] == "# torchsanity-cell 0"
    assert nb.cell_at(2) == (nb.cells[0], 1)
    c2 = nb.cells[2]
    assert lines[c2.first_line - 1].startswith("pass  # torchsanity-magic")
    assert lines[c2.first_line + 1] == "for x in y:"
    assert nb.to_cell(Position(c2.first_line + 2, 4)) == (c2, Position(3, 4))
    assert nb.cell_at(c2.first_line - 1) is None  # the marker line belongs to no cell
    # Splitting an unchanged text gives every cell back exactly, magics and endings included.
    assert nb.split_fixed(nb.text) == dict(cells)
    fixed = nb.text.replace("for x in y:", "for x in z:")
    assert nb.split_fixed(fixed)["c2"] == "%matplotlib inline\n!pip install x\nfor x in z:\n    pass"
    assert nb.split_fixed(nb.text.replace("# torchsanity-cell 1\n", "")) is None


def test_settings_parse_and_report_problems():
    settings = Settings.from_json(
        {"select": ["san1"], "ignore": "SAN504", "severity": {"san101": "Error", "SAN2": "loud"}, "run": "onSave"}
    )
    assert settings.select == ("SAN1",) and settings.ignore == ("SAN504",)
    assert settings.severity == (("SAN101", "error"),)
    assert settings.run == "onSave" and settings.debounce_ms == 250
    assert len(settings.problems) == 1 and "loud" in settings.problems[0]
    bad = Settings.from_json({"run": 3, "debounceMs": "soon", "enable": "yes", "select": [1]})
    assert (bad.run, bad.debounce_ms, bad.enable, bad.select) == ("onType", 250, True, ())
    assert len(bad.problems) == 4
    assert Settings.from_json("nonsense").problems
    assert Settings.from_json(None) == Settings()


@pytest.fixture
def full_collections():
    """The times of the full (oldest-generation) garbage collections that run during the test; the
    collector thresholds are restored afterwards."""
    times: list[float] = []

    def record(phase, info):
        if phase == "stop" and info["generation"] == 2:
            times.append(time.monotonic())

    thresholds = gc.get_threshold()
    gc.callbacks.append(record)
    yield times
    gc.callbacks.remove(record)
    gc.set_threshold(*thresholds)


def test_idle_collector_collects_only_between_requests(full_collections):
    collector = IdleCollector(idle=0.05, every=1000)
    collector.request_started()
    survivors = [[] for _ in range(1_000_000)]  # enough new long-lived objects to trigger a full collection
    time.sleep(0.3)
    del survivors
    assert full_collections == [], "a full collection ran while a request was being answered"
    answered = time.monotonic()
    collector.request_answered()
    deadline = answered + 5
    while not full_collections and time.monotonic() < deadline:
        time.sleep(0.01)
    assert full_collections and full_collections[0] - answered >= 0.05  # after the idle pause, not at once


def test_idle_collector_collects_after_many_requests_without_a_pause(full_collections):
    collector = IdleCollector(idle=60, every=3)
    for _ in range(2):
        collector.request_started()
        collector.request_answered()
    assert full_collections == []
    collector.request_started()
    collector.request_answered()
    assert len(full_collections) == 1  # the third answer is followed by a collection, at once


def test_projects_follow_generations_and_disk_changes(tmp_path):
    from torchsanity.server.lsp_analysis import Projects, Snapshot

    for name in ("a.py", "b.py"):
        (tmp_path / name).write_text("import torch\n", encoding="utf-8")

    def snapshot(generation: int, changes: tuple[str, ...] = ()) -> Snapshot:
        return Snapshot(key="k", generation=0, path=str(tmp_path / "t.py"), is_file=True, encoding="utf-16",
                        text="", project_root=str(tmp_path), project_generation=generation, disk_changes=changes)

    projects = Projects()
    project = projects.for_snapshot(snapshot(0))
    a, b = project.model_for(tmp_path / "a.py"), project.model_for(tmp_path / "b.py")
    assert projects.for_snapshot(snapshot(0)) is project
    assert projects.for_snapshot(snapshot(0, (str(tmp_path / "a.py"),))) is project  # a.py changed on disk
    assert project.model_for(tmp_path / "a.py") is not a
    assert project.model_for(tmp_path / "b.py") is b
    a = project.model_for(tmp_path / "a.py")
    assert projects.for_snapshot(snapshot(0, (str(tmp_path / "a.py"),))) is project  # applied once
    assert project.model_for(tmp_path / "a.py") is a
    newer = projects.for_snapshot(snapshot(1))  # a pyproject.toml changed: read afresh
    assert newer is not project
    assert projects.for_snapshot(snapshot(0)) is newer  # a fix-all of an older analysis changes nothing
    assert projects.for_snapshot(Snapshot(key="u", generation=0, path="untitled:1", is_file=False,
                                          encoding="utf-16")) is None
