"""The "Run Sanity Probe" CodeLens, computed by the real server from the program model (over stdio)."""

from __future__ import annotations

from pathlib import Path

import pytest
from lsprotocol import types
from pytest_lsp import LanguageClient

from lsp_helpers import diagnostics_for, initialize, open_document, write_pyproject

pytestmark = pytest.mark.asyncio

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
LOOP = "for x, y in loader:\n    opt.zero_grad()\n    loss_fn(model(x), y).backward()\n    opt.step()\n"
IN_FUNCTION = "".join(f"    {line}\n" for line in LOOP.splitlines())
HEAD = "import torch\nmodel = Net()\nopt = torch.optim.SGD(model.parameters(), lr=0.1)\n"

SCRIPTS = {
    # a bare script: the training loop itself
    "bare": (HEAD + "\n" + LOOP, [4]),
    # a script that calls its training function at top level: that call
    "call": ("import torch\n\ndef main():\n" + IN_FUNCTION + "\nmain()\n", [8]),
    # the __main__ block (either side of ==, after a comment); a loop in a helper it calls
    "guard": ("import torch\n\ndef main():\n" + IN_FUNCTION + "\n# run\nif '__main__' == __name__:\n    main()\n", [9]),
    # a guard whose training the model cannot follow (a dispatch table), in a file that trains
    "dispatch": (
        "import sys\n\ndef train():\n" + IN_FUNCTION + "\nCOMMANDS = {'train': train}\n\n"
        "if __name__ == '__main__':\n    COMMANDS[sys.argv[1]]()\n",
        [10],
    ),
    # Lightning's fit
    "fit": ("import lightning as L\n\nif __name__ == '__main__':\n    trainer = L.Trainer()\n    trainer.fit(model, loader)\n", [2]),
    # a library of training functions (executing it runs nothing): no lens
    "library": ("import torch\n\ndef train_one_epoch(model, opt, loader):\n" + IN_FUNCTION, []),
    # a script that does not train: no lens, even with a guard
    "no training": ("import json\n\nif __name__ == '__main__':\n    print(json.dumps({}))\n", []),
    # a loop that only steps (no backward) is not a training loop
    "step only": ("for epoch in range(3):\n    scheduler.step()\n", []),
}


async def lenses(client: LanguageClient, uri: str, command: str = "torchsanity.runSanityProbe") -> list[types.CodeLens]:
    """The lenses of one command (the probe's by default; the watch lens is tested in test_watch_lsp.py)."""
    found = await client.text_document_code_lens_async(
        types.CodeLensParams(text_document=types.TextDocumentIdentifier(uri=uri))
    ) or []
    return [lens for lens in found if lens.command.command == command]


@pytest.mark.parametrize("name", list(SCRIPTS))
async def test_lens_over_each_training_entry_point(client: LanguageClient, tmp_path: Path, name: str):
    text, expected = SCRIPTS[name]
    uri = open_document(client, tmp_path / "script.py", text)
    found = await lenses(client, uri)
    assert [lens.range.start.line for lens in found] == expected
    for lens in found:
        assert lens.command.command == "torchsanity.runSanityProbe"
        assert list(lens.command.arguments) == [uri]
        assert lens.command.title == "Run Sanity Probe"
        assert lens.range.end.character == len(text.splitlines()[lens.range.start.line])


async def test_lens_on_the_bundled_examples(client: LanguageClient, tmp_path: Path):
    for name in ("healthy_classifier.py", "buggy_training.py"):
        text = (EXAMPLES / name).read_text(encoding="utf-8")
        uri = open_document(client, tmp_path / name, text)
        (lens,) = await lenses(client, uri)
        assert text.splitlines()[lens.range.start.line].startswith("if __name__ == ")


async def test_lenses_follow_edits_while_the_file_does_not_parse(client: LanguageClient, tmp_path: Path):
    text = SCRIPTS["guard"][0]
    uri = open_document(client, tmp_path / "edit.py", text)
    assert [lens.range.start.line for lens in await lenses(client, uri)] == [9]
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=2),
            content_changes=[
                types.TextDocumentContentChangePartial(
                    range=types.Range(types.Position(0, 0), types.Position(0, 0)), text="def broken(:\n\n"
                )
            ],
        )
    )
    assert [d.code for d in await diagnostics_for(client, uri, version=2)] == ["SAN000"]
    assert [lens.range.start.line for lens in await lenses(client, uri)] == [11]


async def test_code_lens_setting_turns_them_off(bare_client: LanguageClient, tmp_path: Path):
    write_pyproject(tmp_path)
    await initialize(bare_client, tmp_path, settings={"codeLens": False})
    uri = open_document(bare_client, tmp_path / "off.py", SCRIPTS["bare"][0])
    await diagnostics_for(bare_client, uri, version=1)
    assert await lenses(bare_client, uri) == []


async def test_lens_in_an_untrusted_workspace_says_the_probe_is_disabled(bare_client: LanguageClient, tmp_path: Path):
    write_pyproject(tmp_path)
    await bare_client.initialize_session(
        types.InitializeParams(
            capabilities=types.ClientCapabilities(),
            root_uri=tmp_path.as_uri(),
            initialization_options={"workspaceTrusted": False},
        )
    )
    uri = open_document(bare_client, tmp_path / "untrusted.py", SCRIPTS["bare"][0])
    (lens,) = await lenses(bare_client, uri)
    assert "not trusted" in lens.command.title
