"""The LSP base protocol through the real server over stdio, as raw bytes: header names in any case,
``Content-Type`` before or after ``Content-Length``, ``utf-8`` / ``utf8`` charsets, optional whitespace; a
message with bad headers is skipped and the server goes on."""

from __future__ import annotations

import json
import queue
import subprocess
import threading
from pathlib import Path

import pytest

from lsp_helpers import SERVER_COMMAND


class RawServer:
    """The server as a subprocess, written to and read from byte by byte."""

    def __init__(self, cwd: Path) -> None:
        self.proc = subprocess.Popen(
            SERVER_COMMAND, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, cwd=cwd
        )
        self.messages: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        stream = self.proc.stdout
        while True:
            length = None
            while True:
                line = stream.readline()
                if not line:
                    return
                if line in (b"\r\n", b"\n"):
                    break
                name, _, value = line.decode("ascii").partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value)
            self.messages.put(json.loads(stream.read(length)))

    def send(self, headers: bytes, body: bytes) -> None:
        self.proc.stdin.write(headers + b"\r\n" + body)
        self.proc.stdin.flush()

    def framed(self, message: dict, template: str = "Content-Length: {n}\r\n") -> None:
        body = json.dumps(message, ensure_ascii=False).encode("utf-8")
        self.send(template.format(n=len(body)).encode("ascii"), body)

    def answer(self, msg_id: int, timeout: float = 20.0) -> dict:
        while True:
            message = self.messages.get(timeout=timeout)
            if message.get("id") == msg_id and "method" not in message:
                return message

    def notification(self, method: str, timeout: float = 20.0) -> dict:
        while True:
            message = self.messages.get(timeout=timeout)
            if message.get("method") == method:
                return message

    def close(self) -> int:
        try:
            self.framed({"jsonrpc": "2.0", "id": 999, "method": "shutdown"})
            self.answer(999)
            self.framed({"jsonrpc": "2.0", "method": "exit"})
            return self.proc.wait(timeout=20)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def raw(tmp_path: Path):
    server = RawServer(tmp_path)
    yield server
    if server.proc.poll() is None:
        server.proc.kill()
        server.proc.wait()


def _request(msg_id: int, method: str, params: dict | None = None) -> dict:
    return {"jsonrpc": "2.0", "id": msg_id, "method": method, "params": params or {}}


def _initialize(raw: RawServer, root: Path, template: str) -> dict:
    raw.framed(_request(1, "initialize", {"processId": None, "rootUri": root.as_uri(), "capabilities": {}}), template)
    return raw.answer(1)


@pytest.mark.parametrize(
    "template",
    [
        "Content-Length: {n}\r\nContent-Type: application/vscode-jsonrpc; charset=utf-8\r\n",
        "Content-Type: application/vscode-jsonrpc; charset=utf-8\r\nContent-Length: {n}\r\n",
        "content-length: {n}\r\n",
        "CONTENT-LENGTH:{n}\r\ncontent-type: application/vscode-jsonrpc; charset=UTF8\r\n",
        "Content-Length:   {n}  \r\nContent-Type: application/vscode-jsonrpc;charset=\"utf-8\"\r\n",
    ],
)
def test_headers_the_base_protocol_allows(raw: RawServer, tmp_path: Path, template: str):
    answer = _initialize(raw, tmp_path, template)
    assert answer["result"]["serverInfo"]["name"] == "torchsanity"
    raw.framed({"jsonrpc": "2.0", "method": "initialized", "params": {}}, template)
    # A body with multi-byte UTF-8: Content-Length counts bytes.
    uri = (tmp_path / "t.py").as_uri()
    text = 's = "🔥損失"\nimport torch\nopt = torch.optim.Adam(p, weight_decay=1e-4)\n'
    raw.framed(
        {"jsonrpc": "2.0", "method": "textDocument/didOpen",
         "params": {"textDocument": {"uri": uri, "languageId": "python", "version": 1, "text": text}}},
        template,
    )
    published = raw.notification("textDocument/publishDiagnostics")
    assert [d["code"] for d in published["params"]["diagnostics"]] == ["SAN504"]
    raw.framed(_request(2, "textDocument/hover", {"textDocument": {"uri": uri}, "position": {"line": 2, "character": 20}}),
               template)
    hover = raw.answer(2)
    assert "SAN504" in hover["result"]["contents"]["value"]
    assert raw.close() == 0


def test_bad_headers_skip_one_message_and_the_server_goes_on(raw: RawServer, tmp_path: Path):
    _initialize(raw, tmp_path, "Content-Length: {n}\r\n")
    status = json.dumps(_request(2, "torchsanity/serverStatus")).encode()
    raw.send(b"Content-Length: %d\r\nContent-Type: application/vscode-jsonrpc; charset=latin-1\r\n" % len(status), status)
    raw.send(b"Content-Type: application/vscode-jsonrpc\r\n", b"")  # no Content-Length at all
    raw.send(b"this is not a header\r\n", b"")
    raw.framed(_request(3, "torchsanity/serverStatus"))
    answer = raw.answer(3)
    assert answer["result"]["documents"] == []
    assert raw.messages.empty() or all(m.get("id") != 2 for m in list(raw.messages.queue))
    assert raw.close() == 0
