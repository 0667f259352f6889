"""Edit-to-diagnostics latency through the real language server (a script, not a test).

    python tests/bench/bench_lsp_latency.py [--edits 60] [--sizes 300,3000]

Starts ``torchsanity server`` over stdio with a real LSP client (pytest-lsp's), sets the debounce to 0
(so the latency measured is the server's work, not the quiet time it waits for the typist), opens a
300-line and a 3,000-line training file and makes many one-line edits to each, in three places: a
top-level line, a line in a function in the middle of the file, and that line again when the functions
are methods of one class spanning the file (the worst case of the incremental parse, which reparses
the top-level statement an edit lands in); then a 2,000-line training-dense file (``--dense``: many
training, fine-tuning and evaluation loops, where most rules have work everywhere). For every edit it
measures the time from sending ``didChange`` to receiving the ``publishDiagnostics`` of that version,
and asks the server how long the analysis itself took. Printed next to the bare
``libcst.parse_module`` time of the same file, measured in this process. No time assertions: the
targets (median ≤ 30 ms for 300 lines, ≤ 150 ms for 3,000) are for a person to compare. Last, the
engine alone on the training-dense file, in this process: a fresh analysis, the incremental analysis as it
was before positions were kept across versions, as it was before the analyses of unchanged code were kept
(per-statement results, each function's effects), and the incremental analysis now, side by side, with the
time of its phases (reparse, program model, rules).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("LIBCST_PARSER_TYPE", "native")

import libcst  # noqa: E402
from lsprotocol import types  # noqa: E402
from pygls.uris import from_fs_path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "server"))
from lsp_helpers import SERVER_COMMAND, capabilities, make_client  # noqa: E402


class _Forgotten:
    """What :meth:`ProgramModel.build` reads of the program model it reuses, less what the analyses of
    unchanged code hand on (per-statement results, each function's effects): the incremental analysis as it
    was before they were kept."""

    def __init__(self, program) -> None:
        self._statements = {key: dataclasses.replace(index, memo={}) for key, index in program._statements.items()}
        self._memo: dict = {}
        self._handed: dict = {}
        self._facts = self._previous_facts = None

HEADER = '''\
"""A training script."""

import argparse
import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset


class Block(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, 4 * dim)
        self.fc2 = nn.Linear(4 * dim, dim)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x):
        return x + self.fc2(F.gelu(self.fc1(self.norm(x))))


class Model(nn.Module):
    def __init__(self, dim: int = 64, depth: int = 4, classes: int = 10) -> None:
        super().__init__()
        self.blocks = nn.Sequential(*[Block(dim) for _ in range(depth)])
        self.head = nn.Linear(dim, classes)

    def forward(self, x):
        return self.head(self.blocks(x))

'''

HELPER = '''\

def evaluate_{i}(model, loader, device="cpu"):
    model.eval()
    correct = total = 0
    with torch.no_grad():
        for x, y in loader:
            {move}
            logits = model({xname})
            correct += (logits.argmax(-1) == {yname}).sum().item()
            total += {yname}.numel()
    model.train()
    return correct / max(total, 1)


def attention_{i}(q, k, v, B, T, C):
    att = (q @ k.transpose(-2, -1)) / math.sqrt(k.size(-1))
    att = F.softmax(att, dim=-1)
    y = att @ v
    return y.transpose(1, 2).reshape(B, T, C)

'''

FOOTER = '''\

def train(args):
    torch.manual_seed(args.seed)
    x = torch.randn(1024, 64)
    y = torch.randint(0, 10, (1024,))
    loader = DataLoader(TensorDataset(x, y), batch_size=64, shuffle=True)
    model = Model()
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr, weight_decay=1e-4)
    criterion = nn.CrossEntropyLoss()
    for epoch in range(args.epochs):
        for step, (xb, yb) in enumerate(loader):
            optimizer.zero_grad()
            loss = criterion(model(xb), yb)
            loss.backward()
            optimizer.step()
    return model


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--lr", type=float, default=3e-4)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    train(parser.parse_args())
'''

# The training-dense file: a script made only of training, fine-tuning and evaluation loops (gradient
# accumulation, a scheduler, frozen layers, a softmax fed to cross-entropy, a loss kept with its graph),
# so that most rules have work in every function.
DENSE_BLOCK = '''\


def evaluate_{i}(model, loader, criterion, device="cpu"):
    model.eval()
    total_loss = correct = seen = 0
    with torch.no_grad():
        for x, y in loader:
            x, y = x.to(device), y.to(device)
            logits = model(x)
            total_loss += criterion(logits, y).item()
            correct += (logits.argmax(-1) == y).sum().item()
            seen += y.numel()
    model.train()
    return total_loss / max(len(loader), 1), correct / max(seen, 1)


def train_{i}(model, train_loader, val_loader, epochs=3, accumulation=4, device="cpu"):
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-4, weight_decay=0.01)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=10, gamma=0.5)
    criterion = nn.CrossEntropyLoss()
    model.to(device)
    for epoch in range(epochs):
        model.train()
        for step, (x, y) in enumerate(train_loader):
            x, y = x.to(device), y.to(device)
            logits = model(x)
            loss = criterion(logits, y) / accumulation
            loss.backward()
            if (step + 1) % accumulation == 0:
                optimizer.step()
                optimizer.zero_grad()
        scheduler.step()
        val_loss, val_acc = evaluate_{i}(model, val_loader, criterion, device)
        print(epoch, val_loss, val_acc)
    return model


def finetune_{i}(model, loader, steps=100):
    for p in model.blocks.parameters():
        p.requires_grad = False
    optimizer = torch.optim.SGD(model.head.parameters(), lr=0.01, momentum=0.9)
    criterion = nn.CrossEntropyLoss()
    running = 0.0
    for step, (x, y) in enumerate(loader):
        optimizer.zero_grad()
        probs = F.softmax(model(x), dim=-1)
        loss = criterion(probs, y)
        loss.backward()
        optimizer.step()
        running += loss
        if step >= steps:
            break
    return running / max(steps, 1)


def validate_{i}(model, loader):
    losses = []
    for x, y in loader:
        out = model(x)
        losses.append(F.cross_entropy(out, y).item())
    return sum(losses) / max(len(losses), 1)
'''
DENSE_LINE = "    running = 0.0"  # a line of every finetune_<i>

EDIT_MARKER = "LATENCY_PROBE = 0"
FUNCTION_LINE = "    correct = total = 0"  # a line of every evaluate_<i> helper

# Where the edits land: a top-level line; a line inside a function in the middle of the file; the same
# line when the helpers are methods of one class that spans the whole file (the incremental parse
# reparses the top-level statement that holds an edit: here, the class).
SITES = ("top-level line", "function body", "method of a file-long class")
DENSE_SITE = "training-dense function body"


def training_file(lines: int, rebind: bool = True, in_class: bool = False) -> str:
    """A training script of ``lines`` lines. ``rebind``: the helpers move batches with the ubiquitous
    ``x, y = x.to(device), y.to(device)`` (a name rebound in many functions); without it they bind
    new names (``xd, yd = ...``). ``in_class``: the helpers are methods of one class."""
    parts = [HEADER, EDIT_MARKER + "\n"]
    if in_class:
        parts.append("\n\nclass Evaluation:\n")
    i = 0
    names = {"move": "x, y = x.to(device), y.to(device)", "xname": "x", "yname": "y"}
    if not rebind:
        names = {"move": "xd, yd = x.to(device), y.to(device)", "xname": "xd", "yname": "yd"}
    while sum(p.count("\n") for p in parts) + FOOTER.count("\n") + HELPER.count("\n") <= lines:
        helper = HELPER.format(i=i, **names)
        if in_class:
            helper = "".join("    " + line if line.strip() else line for line in helper.splitlines(keepends=True))
        parts.append(helper)
        i += 1
    parts.append(FOOTER)
    text = "".join(parts)
    have = text.count("\n")
    return text + "\n" * max(0, lines - have)


def dense_training_file(lines: int) -> str:
    """A script of about ``lines`` lines made of :data:`DENSE_BLOCK` (training and evaluation loops)."""
    parts, i = [HEADER], 0
    while sum(p.count("\n") for p in parts) + FOOTER.count("\n") < lines:
        parts.append(DENSE_BLOCK.format(i=i))
        i += 1
    return "".join(parts + [FOOTER])


def edit_line(text: str, site: str) -> int:
    """The 0-based line the edits of ``site`` change."""
    lines = text.split("\n")
    if site == SITES[0]:
        return lines.index(EDIT_MARKER)
    indent = "    " if site == SITES[2] else ""
    wanted = DENSE_LINE if site == DENSE_SITE else indent + FUNCTION_LINE
    candidates = [i for i, line in enumerate(lines) if line == wanted]
    return candidates[len(candidates) // 2]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def parse_times(text: str, repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        began = time.perf_counter()
        libcst.parse_module(text)
        out.append(time.perf_counter() - began)
    return out


async def measure(client, folder: Path, lines: int, site: str, edits: int, rebind: bool, budget: float) -> dict | None:
    if site == DENSE_SITE:
        text = dense_training_file(lines)
        path = folder / f"dense_{lines}.py"
    else:
        text = training_file(lines, rebind, in_class=site == SITES[2])
        path = folder / f"train_{lines}_{SITES.index(site)}.py"
    path.write_text(text, encoding="utf-8")
    uri = from_fs_path(str(path))
    line = edit_line(text, site)
    original = text.split("\n")[line]

    arrived = client.publish_times  # (uri, version) -> arrival time, stamped by the client's handler
    client.text_document_did_open(
        types.DidOpenTextDocumentParams(
            text_document=types.TextDocumentItem(uri=uri, language_id="python", version=1, text=text)
        )
    )
    try:
        await wait_for(lambda: (uri, 1) in arrived, budget)
    except TimeoutError:
        client.text_document_did_close(
            types.DidCloseTextDocumentParams(text_document=types.TextDocumentIdentifier(uri=uri))
        )
        return {"lines": text.count("\n"), "site": site, "timed_out": budget}

    latencies: list[float] = []
    analysis: list[float] = []
    old_line = original
    for n in range(edits):
        version = n + 2
        new_line = original[:-1] + str(n + 1)  # `... = 0` becomes `... = 1`, `... = 2`, ...
        old_len = len(old_line)
        old_line = new_line
        sent = time.perf_counter()
        client.text_document_did_change(
            types.DidChangeTextDocumentParams(
                text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version),
                content_changes=[
                    types.TextDocumentContentChangePartial(
                        range=types.Range(types.Position(line, 0), types.Position(line, old_len)),
                        text=new_line,
                    )
                ],
            )
        )
        await wait_for(lambda: (uri, version) in arrived, budget)
        latencies.append(arrived[(uri, version)] - sent)
        status = await client.protocol.send_request_async("torchsanity/serverStatus", {})
        doc = next(d for d in status.documents if d.uri == uri)
        analysis.append(doc.lastAnalysisMs / 1000)
    client.text_document_did_close(types.DidCloseTextDocumentParams(text_document=types.TextDocumentIdentifier(uri=uri)))
    parse = parse_times(text, max(5, min(edits, 30)))
    return {
        "lines": text.count("\n"),
        "site": site,
        "latency": latencies,
        "analysis": analysis,
        "parse": parse,
    }


async def wait_for(predicate, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("the server did not publish in time")
        await asyncio.sleep(0.0005)


def in_process(text: str, line: int, edits: int) -> dict[str, list[float]]:
    """Per-edit seconds of the engine alone on ``edits`` one-line edits of ``line``: a fresh analysis
    (parse, program model, rules, positions), the incremental analysis as it was before positions were
    kept across versions (reparse, model reuse, rules, a position pass over every statement holding a
    finding), :class:`LiveDocument` without the analyses of unchanged code kept across versions, and
    :class:`LiveDocument` now, with the phases of the latter and each rule's time (on a program model built
    from the previous version's, as the live document builds it)."""
    from torchsanity.analyzers.context import RuleContext
    from torchsanity.analyzers.engine import analyze_program, analyze_source
    from torchsanity.analyzers.live import LiveDocument
    from torchsanity.analyzers.model import ProgramModel
    from torchsanity.analyzers.registry import all_rules

    lines = text.split("\n")
    original = lines[line]
    versions = ["\n".join(lines[:line] + [original[:-1] + str(n + 1)] + lines[line + 1:]) for n in range(edits)]
    out: dict[str, list[float]] = {k: [] for k in ("fresh", "before", "unkept", "now", "reparse", "model", "rules")}
    for version in versions:
        began = time.perf_counter()
        analyze_source(version, "dense.py", verify=False)
        out["fresh"].append(time.perf_counter() - began)
    previous = LiveDocument()
    previous.analyze(text, "dense.py")
    parsed, program = previous.parsed, previous.model
    ruled = program  # the rules' program model, each built from the previous version's
    for version in versions:
        forgotten = _Forgotten(program)
        began = time.perf_counter()
        parsed = parsed.reparse(version)
        parsed_at = time.perf_counter()
        program = ProgramModel.build(parsed.module, "dense.py", reuse=forgotten)
        built_at = time.perf_counter()
        analyze_program(program, version, statement_lines=parsed.statement_lines)
        out["before"].append(time.perf_counter() - began)
        out["reparse"].append(parsed_at - began)
        out["model"].append(built_at - parsed_at)
        ruled = ProgramModel.build(parsed.module, "dense.py", reuse=ruled)
        ctx = RuleContext(ruled)
        began = time.perf_counter()
        for rule in all_rules():
            rule_began = time.perf_counter()
            list(rule().check(ctx))
            out.setdefault(rule.code, []).append(time.perf_counter() - rule_began)
        out["rules"].append(time.perf_counter() - began)
    unkept = LiveDocument()
    unkept.analyze(text, "dense.py")
    for version in versions:
        unkept._program = _Forgotten(unkept.model)
        began = time.perf_counter()
        unkept.analyze(version, "dense.py")
        out["unkept"].append(time.perf_counter() - began)
    document = LiveDocument()
    document.analyze(text, "dense.py")
    for version in versions:
        began = time.perf_counter()
        document.analyze(version, "dense.py")
        out["now"].append(time.perf_counter() - began)
    return out


def print_in_process(lines: int, edits: int) -> None:
    text = dense_training_file(lines)
    timings = in_process(text, edit_line(text, DENSE_SITE), edits)
    med = {k: statistics.median(v) * 1000 for k, v in timings.items()}
    print(f"\nthe engine alone on the training-dense file ({text.count(chr(10))} lines, {edits} one-line edits in a "
          f"function body; median ms per edit)")
    print(f"{'fresh analysis':>15} {'incremental before':>19} {'analyses not kept':>18} {'incremental now':>16}   "
          f"{'of which: reparse':>18} {'program model':>14} {'rules':>7}")
    print(f"{med['fresh']:>15.1f} {med['before']:>19.1f} {med['unkept']:>18.1f} {med['now']:>16.1f}   "
          f"{med['reparse']:>18.1f} {med['model']:>14.1f} {med['rules']:>7.1f}")
    costliest = sorted((k for k in med if k.startswith("SAN")), key=lambda k: -med[k])[:5]
    print("the costliest rules (median ms per edit): " + ", ".join(f"{k} {med[k]:.1f}" for k in costliest))


async def main_async(sizes: list[int], edits: int, rebind: bool, budget: float, dense: int) -> None:
    client = make_client()
    await client.start_io(*SERVER_COMMAND)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "pyproject.toml").write_text("[tool.torchsanity]\n", encoding="utf-8")
        client.set_configuration({"debounceMs": 0}, section="torchsanity")
        await client.initialize_session(
            types.InitializeParams(
                capabilities=capabilities(),
                root_uri=from_fs_path(tmp),
                workspace_folders=[types.WorkspaceFolder(uri=from_fs_path(tmp), name="bench")],
            )
        )
        results = [await measure(client, folder, lines, site, edits, rebind, budget) for lines in sizes for site in SITES]
        if dense:
            results.append(await measure(client, folder, dense, DENSE_SITE, edits, rebind, budget))
        if any("timed_out" in r for r in results):
            client._server.kill()  # still busy with an analysis it cannot abort: do not wait for it
        else:
            await client.shutdown_session()
        await client.stop()

    targets = {300: 30, 2000: 150, 3000: 150}
    variant = "helpers rebind x, y = x.to(device), ..." if rebind else "helpers bind new names"
    print(f"edit-to-diagnostics latency through the real server ({edits} one-line edits per file, debounce 0; {variant})")
    print("analysis: the engine's time in the server; server overhead: latency - analysis (I/O, JSON, scheduling)")
    print(
        f"{'lines':>6} {'edited':<28} {'median ms':>10} {'p95 ms':>8} {'analysis med':>13} {'analysis p95':>13} "
        f"{'server overhead':>16} {'parse med':>10} {'latency/parse':>14} {'target':>7}"
    )
    for r in results:
        if "timed_out" in r:
            print(f"{r['lines']:>6} {r['site']:<28} no diagnostics within {r['timed_out']:.0f} s of opening (the analysis did not finish)")
            continue
        lat, ana, par = r["latency"], r["analysis"], r["parse"]
        med, p95 = statistics.median(lat) * 1000, percentile(lat, 0.95) * 1000
        amed, ap95 = statistics.median(ana) * 1000, percentile(ana, 0.95) * 1000
        pmed = statistics.median(par) * 1000
        overhead = statistics.median(l - a for l, a in zip(lat, ana)) * 1000
        target = targets.get(min(targets, key=lambda t: abs(t - r["lines"])))
        print(
            f"{r['lines']:>6} {r['site']:<28} {med:>10.1f} {p95:>8.1f} {amed:>13.1f} {ap95:>13.1f} "
            f"{overhead:>16.1f} {pmed:>10.1f} {med / pmed:>13.1f}x {'≤' + str(target):>7}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--edits", type=int, default=60, help="edits per file (default 60)")
    parser.add_argument("--sizes", default="300,3000", help="file sizes in lines (default 300,3000)")
    parser.add_argument(
        "--rebind", action="store_true", help="helpers rebind `x, y = x.to(device), ...` (stresses the program model)"
    )
    parser.add_argument("--budget", type=float, default=120, help="seconds to wait for one analysis (default 120)")
    parser.add_argument("--dense", type=int, default=2000,
                        help="lines of the training-dense file, also timed in process (default 2000; 0: skip it)")
    args = parser.parse_args()
    asyncio.run(main_async([int(s) for s in args.sizes.split(",")] if args.sizes else [], args.edits, args.rebind,
                           args.budget, args.dense))
    if args.dense:
        print_in_process(args.dense, args.edits)


if __name__ == "__main__":
    main()
