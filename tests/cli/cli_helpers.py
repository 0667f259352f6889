"""Shared snippets and helpers of the CLI tests."""

from __future__ import annotations

import json
from pathlib import Path

ADAM_L2 = "import torch\nopt = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-4)\n"
CLEAN = "import torch\nopt = torch.optim.AdamW(model.parameters(), lr=1e-3)\n"
# A finding whose fix is safe (SAN504's AdamW fix is unsafe: `--fix` alone leaves it).
SAFE_FIX = "import torch\nx = torch.zeros(3)\nx.cuda()\n"
SAFE_FIXED = "import torch\nx = torch.zeros(3)\nx = x.cuda()\n"



def write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def cache_entries(cache_dir: Path) -> list[dict]:
    """Every entry of the cache's indexes in ``cache_dir`` (one folder of shards per engine)."""
    entries = []
    for shard in sorted(cache_dir.glob("index-*/*.json")):
        entries.extend(json.loads(shard.read_text(encoding="utf-8"))["entries"].values())
    return entries
