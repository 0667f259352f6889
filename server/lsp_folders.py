"""Which settings, project configuration and project apply to a path.

Settings are pulled per workspace folder through ``workspace/configuration`` (multi-root workspaces may
differ), or come from ``initializationOptions`` / ``didChangeConfiguration`` for clients without it;
:mod:`~torchsanity.server.lsp_settings` validates them and merges them over ``pyproject.toml``. A project
(the folder whose sibling modules the rules may read) is the path's workspace folder, else the folder of
its ``pyproject.toml``, else its own folder. The projects themselves live where the analyses run
(:class:`~torchsanity.server.lsp_analysis.Projects`); this side only counts what changed on disk.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any, Awaitable, Callable

from lsprotocol import types
from pygls.uris import to_fs_path
from pygls.workspace import Workspace

from ..analyzers import Config
from .lsp_settings import SECTION, ProjectConfigs, Settings

_MAX_DISK_CHANGES = 500  # changed module files remembered per generation (each snapshot carries them)


class FolderSettings:
    """Settings, configurations and projects per path; ``workspace()`` is None before ``initialize``."""

    def __init__(
        self,
        workspace: Callable[[], Workspace | None],
        supports_configuration: Callable[[], bool],
        request_configuration: Callable[[types.ConfigurationParams], Awaitable[Any]],
        log: Callable[[str, types.MessageType], None],
        log_once: Callable[..., None],
    ) -> None:
        self._current_workspace = workspace
        self._supports_configuration = supports_configuration
        self._request_configuration = request_configuration
        self._log = log
        self._log_once = log_once
        self.global_settings = Settings()
        self.init_settings: Settings | None = None
        self.folder_settings: dict[str, Settings] = {}
        self.ready = asyncio.Event()  # set once the client's settings were asked for
        self.configs = ProjectConfigs(on_error=log_once)
        self.generation = 0  # bumped when a pyproject.toml changes: every project is read afresh
        self.disk_changes: list[str] = []  # module files changed on disk in this generation, oldest first

    def folders(self) -> list[tuple[str, str]]:
        """(folder URI, folder path) of every workspace folder, longest path first."""
        workspace = self._current_workspace()
        if workspace is None:
            return []
        out = []
        for folder in workspace.folders.values():
            path = to_fs_path(folder.uri)
            if path:
                out.append((folder.uri, str(Path(path))))
        if not out and workspace.root_path:
            out.append((workspace.root_uri, str(Path(workspace.root_path))))
        return sorted(out, key=lambda f: len(f[1]), reverse=True)

    def _folder_of(self, path: str) -> tuple[str, str] | None:
        for folder_uri, folder_path in self.folders():
            if path == folder_path or path.startswith(folder_path.rstrip(os.sep) + os.sep):
                return folder_uri, folder_path
        return None

    def folder_for_path(self, path: str) -> str | None:
        folder = self._folder_of(path)
        return folder[1] if folder else None

    def settings_for(self, path: str) -> Settings:
        folder = self._folder_of(path)
        if folder is not None and folder[0] in self.folder_settings:
            return self.folder_settings[folder[0]]
        return self.global_settings

    def from_initialization(self, options: Any) -> None:
        """Settings in ``initializationOptions``: ``{"settings": {...}}``, ``{"settings": {"torchsanity":
        {...}}}`` or ``{"torchsanity": {...}}`` (Helix sends its ``config``)."""
        if not isinstance(options, dict):
            return
        settings = options.get("settings", options.get(SECTION))
        if isinstance(settings, dict) and isinstance(settings.get(SECTION), dict):
            settings = settings[SECTION]
        if settings is not None:
            self.init_settings = self.global_settings = self._parse(settings)

    async def load(self) -> None:
        """Pull ``torchsanity`` settings for the global scope and every workspace folder."""
        try:
            if self._supports_configuration():
                folders = self.folders()
                items = [types.ConfigurationItem(section=SECTION)]
                items += [types.ConfigurationItem(scope_uri=uri, section=SECTION) for uri, _ in folders]
                result = await asyncio.wait_for(self._request_configuration(types.ConfigurationParams(items=items)), 10)
                result = list(result or [])
                self.global_settings = self._parse(result[0] if result else None)
                self.folder_settings = {uri: self._parse(value) for (uri, _), value in zip(folders, result[1:])}
        except Exception as error:  # noqa: BLE001 - settings are optional
            self._log(f"torchsanity: cannot read settings: {error}", types.MessageType.Warning)
        finally:
            self.ready.set()

    async def changed(self, pushed: Any) -> None:
        """``didChangeConfiguration``: pull again, or take the pushed ``{"torchsanity": {...}}``."""
        if self._supports_configuration():
            self.ready.clear()
            await self.load()
        elif isinstance(pushed, dict) and isinstance(pushed.get(SECTION), dict):
            self.global_settings = self._parse(pushed[SECTION])
            self.folder_settings = {}
        self.configs.clear()

    def project_files_changed(self) -> None:
        """A ``pyproject.toml`` changed: configurations and projects are read afresh."""
        self.configs.clear()
        self.forget_projects()

    def forget_projects(self) -> None:
        """Every project is read afresh at its next analysis."""
        self.disk_changes.clear()
        self.generation += 1

    def modules_changed(self, paths: list[str]) -> None:
        """Module files changed on disk: the projects forget what they read of them (and what depended
        on that) before the next analysis."""
        if len(self.disk_changes) + len(paths) > _MAX_DISK_CHANGES:
            self.forget_projects()  # a checkout of many files: cheaper to read every project afresh
        else:
            self.disk_changes.extend(paths)

    def _parse(self, value: Any) -> Settings:
        if value is None and self.init_settings is not None:
            return self.init_settings
        settings = Settings.from_json(value)
        for problem in settings.problems:
            self._log_once(f"torchsanity settings: {problem}", kind=types.MessageType.Warning)
        return settings

    def config_for(self, path: str, is_file: bool) -> Config:
        """The project's configuration with the editor's settings over it."""
        base = self.configs.for_path(path) if is_file else Config()
        return self.settings_for(path).apply(base)

    def project_root(self, path: str, config: Config) -> str:
        return self.folder_for_path(path) or (str(config.root) if config.root else str(Path(path).parent))
