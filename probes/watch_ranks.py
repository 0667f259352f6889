"""The watch child under ``torchrun``: which rank this is, where its records go, the parameter checksums every
rank writes on sampled steps, and rank 0 copying the other ranks' checksums into its own metrics file."""

from __future__ import annotations

import os

import torch


def rank_and_world() -> tuple[int, int]:
    """This process's rank and the world size, as torchrun's environment says (0 and 1 without it)."""
    try:
        return int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        return 0, 1


def metrics_path(base: str, rank: int) -> str:
    """Rank 0 writes ``base``; rank r > 0 writes ``base.rank<r>``."""
    return base if rank == 0 else f"{base}.rank{rank}"


def checksums(params: list[torch.Tensor]) -> torch.Tensor:
    """Per parameter, the sum of its weights in float64 (kept as a tensor until a flush)."""
    with torch.no_grad():
        return torch.stack([p.detach().sum(dtype=torch.float64) for p in params]) if params else torch.zeros(0)


class RankFollower:
    """Rank 0 reads the complete lines the other ranks appended to their files and hands back their
    ``checksum`` records, verbatim."""

    def __init__(self, base: str, world: int):
        self.paths = [metrics_path(base, r) for r in range(1, world)]
        self.offsets = [0] * len(self.paths)
        self.ended = [False] * len(self.paths)

    def read(self) -> list[str]:
        out: list[str] = []
        for i, path in enumerate(self.paths):
            try:
                with open(path, "rb") as fh:
                    fh.seek(self.offsets[i])
                    data = fh.read()
            except OSError:
                continue
            end = data.rfind(b"\n")
            if end < 0:
                continue
            self.offsets[i] += end + 1
            for line in data[:end + 1].decode("utf-8", errors="replace").splitlines():
                if line.startswith('{"kind": "checksum"'):
                    out.append(line)
                elif line.startswith('{"kind": "end"'):
                    self.ended[i] = True
        return out

    def all_ended(self) -> bool:
        return all(self.ended)
