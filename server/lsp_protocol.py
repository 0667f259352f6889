"""Every customisation of pygls that reaches past its public API, in one place.

pygls (2.x) is used as it is documented, except for what this module does; each of these touches a
private member, and ``tests/server/test_pygls_contract.py`` fails on a pygls release they were not
verified against (:data:`PYGLS_VERIFIED`) or where one of the members moved or changed shape:

- **Custom requests and notifications keep plain JSON params** (pygls would structure unknown
  methods into namedtuples): :class:`RawRequest` / :class:`RawNotification`.
- **A request whose params cannot be read is answered** with an ``InvalidParams`` error (the client
  waits for that id) and the server goes on; a message that is not JSON-RPC is logged and dropped.
  (``JsonRPCProtocol._send_response``)
- **``$/cancelRequest`` also reaches the server's own long requests** (the probe), through
  :attr:`TorchSanityProtocol.on_cancel`. (``JsonRPCProtocol._handle_cancel_notification``)
- **Documents split lines as LSP does** (``\\r\\n``, ``\\r``, ``\\n`` only; pygls uses
  ``str.splitlines``, which also breaks on form feeds and ``\\u2028``, so incremental edits would land on
  the wrong line). (``LanguageServerProtocol._workspace``, ``Workspace._sync_kind``,
  ``Workspace._position_codec``, ``Workspace._create_text_document``)
- **The stdio transport reads headers as the LSP base protocol allows**: ``Content-Length`` and
  ``Content-Type`` in any order, header names in any case, optional whitespace around values, a
  ``charset`` of ``utf-8`` or ``utf8`` (pygls only recognises the exact line ``Content-Length: N``).
  (``JsonRPCServer._stop_event``)
- Whether the client said ``shutdown`` before ``exit``. (``JsonRPCProtocol._shutdown``)
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import threading
from typing import Any, Callable

import attrs
from pygls.exceptions import JsonRpcException, JsonRpcInvalidParams
from pygls.io_ import StdinAsyncReader, StdoutWriter
from pygls.protocol import LanguageServerProtocol, default_converter
from pygls.workspace import TextDocument, Workspace

from .lsp_positions import split_lines_keepends

logger = logging.getLogger("torchsanity.server")

# The pygls releases these customisations were verified against: [lowest, first excluded).
PYGLS_VERIFIED = ((2, 1), (2, 2))

# The private pygls members this module relies on: (owner, member). The contract test checks each.
PRIVATE_MEMBERS = (
    ("pygls.protocol.JsonRPCProtocol", "_send_response"),
    ("pygls.protocol.JsonRPCProtocol", "_handle_cancel_notification"),
    ("pygls.protocol.JsonRPCProtocol", "_shutdown"),
    ("pygls.protocol.LanguageServerProtocol", "_workspace"),
    ("pygls.workspace.Workspace", "_sync_kind"),
    ("pygls.workspace.Workspace", "_position_codec"),
    ("pygls.workspace.Workspace", "_create_text_document"),
    ("pygls.server.JsonRPCServer", "_stop_event"),
)

_CHARSETS = {"utf-8", "utf8"}
_MAX_HEADER_LINES = 64  # a peer sending endless header lines is not an LSP client


# ---- messages with plain JSON params ------------------------------------------------------------


@attrs.define
class RawRequest:
    """A custom request whose params stay plain JSON."""

    id: Any
    method: str
    jsonrpc: str
    params: Any = None


@attrs.define
class RawNotification:
    """A custom notification whose params stay plain JSON."""

    method: str
    jsonrpc: str
    params: Any = None


class _Answered:
    """A malformed request that has already been answered with an error."""

    jsonrpc = "answered"


def converter_factory():
    """pygls' converter, plus the raw message types."""
    converter = default_converter()
    converter.register_structure_hook(RawRequest, lambda obj, cls: cls(**obj))
    converter.register_structure_hook(RawNotification, lambda obj, cls: cls(**obj))
    return converter


class TorchSanityProtocol(LanguageServerProtocol):
    """pygls' protocol with the customisations above. ``raw_methods`` names the custom requests and
    notifications; ``on_cancel`` is called with the id of every ``$/cancelRequest``."""

    raw_methods: frozenset[str] = frozenset()
    on_cancel: Callable[[Any], None] | None = None

    def get_message_type(self, method: str):
        if method in self.raw_methods:
            return RawRequest
        return super().get_message_type(method)

    def structure_message(self, data: dict[str, Any]):
        if "jsonrpc" in data and "id" not in data and data.get("method") in self.raw_methods:
            return RawNotification(method=data["method"], jsonrpc=data["jsonrpc"], params=data.get("params"))
        try:
            return super().structure_message(data)
        except JsonRpcException as error:
            # A request with params the server cannot read: answer it (the client is waiting for
            # this id) instead of leaving it unanswered, and go on with the next message.
            if isinstance(data, dict) and "id" in data and "method" in data:
                logger.warning("malformed %s request: %s", data.get("method"), error)
                self._send_response(
                    data["id"],
                    error=JsonRpcInvalidParams(f"invalid params for {data.get('method')}").to_response_error(),
                )
                return _Answered()
            raise

    def handle_message(self, message):
        if isinstance(message, _Answered):
            return None
        if not hasattr(message, "jsonrpc"):
            logger.warning("ignoring a message that is not JSON-RPC: %r", message)
            return None
        return super().handle_message(message)

    def _handle_cancel_notification(self, msg_id):
        if self.on_cancel is not None:
            self.on_cancel(msg_id)
        return super()._handle_cancel_notification(msg_id)


def protocol_class(raw_methods: set[str]) -> type[TorchSanityProtocol]:
    """The protocol class for a server whose custom methods (requests and notifications) are ``raw_methods``."""
    return type("TorchSanityProtocol", (TorchSanityProtocol,), {"raw_methods": frozenset(raw_methods)})


def client_said_shutdown(protocol: LanguageServerProtocol) -> bool:
    """Whether ``shutdown`` came before ``exit`` (the exit code depends on it)."""
    return bool(protocol._shutdown)


def workspace_ready(protocol: LanguageServerProtocol) -> bool:
    """Whether ``initialize`` has created the workspace (``protocol.workspace`` raises before)."""
    return protocol._workspace is not None


# ---- documents with LSP line semantics ----------------------------------------------------------


class LspTextDocument(TextDocument):
    """A document whose lines break only at ``\\r\\n``, ``\\r`` and ``\\n``, as LSP (and Python) count."""

    @property
    def lines(self):
        return tuple(split_lines_keepends(self.source))


class LspWorkspace(Workspace):
    """A workspace whose documents are :class:`LspTextDocument`."""

    def _create_text_document(self, doc_uri, source=None, version=None, language_id=None):
        return LspTextDocument(
            doc_uri,
            source=source,
            version=version,
            language_id=language_id,
            sync_kind=self._sync_kind,
            position_codec=self._position_codec,
        )


def install_lsp_workspace(protocol: LanguageServerProtocol) -> None:
    """Swap pygls' workspace (created in ``initialize``, still empty) for an :class:`LspWorkspace`."""
    workspace = protocol._workspace
    if workspace is not None and not isinstance(workspace, LspWorkspace):
        protocol._workspace = LspWorkspace(
            workspace.root_uri, workspace._sync_kind, list(workspace.folders.values()), workspace.position_encoding
        )


# ---- the stdio transport ------------------------------------------------------------------------


class HeaderError(ValueError):
    """A message header the base protocol does not allow."""


def parse_headers(lines: list[bytes]) -> int:
    """The content length of a message from its header lines (without the blank line that ends them).
    Header names are case-insensitive; ``Content-Type`` is optional and its charset must be UTF-8."""
    length = None
    for raw in lines:
        name, colon, value = raw.decode("ascii", errors="replace").partition(":")
        if not colon:
            raise HeaderError(f"not a header line: {raw[:80]!r}")
        name, value = name.strip().lower(), value.strip()
        if name == "content-length":
            if not value.isdigit():
                raise HeaderError(f"Content-Length is not a number: {value[:40]!r}")
            length = int(value)
        elif name == "content-type":
            for parameter in value.split(";")[1:]:
                key, _, charset = parameter.partition("=")
                if key.strip().lower() == "charset" and charset.strip().strip('"').lower() not in _CHARSETS:
                    raise HeaderError(f"unsupported charset {charset.strip()!r} (only utf-8)")
    if length is None:
        raise HeaderError("a message without Content-Length")
    return length


async def read_messages(reader, protocol: LanguageServerProtocol, stop: threading.Event, on_error) -> None:
    """Read LSP base-protocol messages from ``reader`` and hand each to ``protocol`` until EOF or ``stop``.
    A message with bad headers or a body that is not JSON is logged and skipped; the server goes on."""
    while not stop.is_set():
        headers: list[bytes] = []
        while True:
            line = await reader.readline()
            if not line:
                return  # the client is gone
            line = line.rstrip(b"\r\n")
            if not line:
                if headers:
                    break
                continue  # blank lines between messages
            headers.append(line)
            if len(headers) > _MAX_HEADER_LINES:
                logger.error("more than %d header lines: closing the connection", _MAX_HEADER_LINES)
                return
        try:
            length = parse_headers(headers)
        except HeaderError as error:
            logger.error("skipping a message: %s", error)
            continue
        body = await reader.readexactly(length) if length else b""
        if len(body) < length:
            return  # the stream ended inside a message
        try:
            message = json.loads(body.decode("utf-8"), object_hook=protocol.structure_message)
            protocol.handle_message(message)
        except Exception as error:  # noqa: BLE001 - one bad message must not end the session
            logger.exception("unable to handle a message")
            on_error(error, JsonRpcException)


def serve_stdio(server) -> None:
    """Serve ``server`` on stdin / stdout with :func:`read_messages` (pygls' ``start_io``, with the header
    parsing above). Returns when the client exits or goes away."""
    stop = server._stop_event = threading.Event()
    reader = StdinAsyncReader(sys.stdin.buffer, server.thread_pool)
    server.protocol.set_writer(StdoutWriter(sys.stdout.buffer))
    try:
        asyncio.run(read_messages(reader, server.protocol, stop, server.report_server_error))
    except BrokenPipeError:
        logger.error("the connection to the client is lost")
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        server.shutdown()
