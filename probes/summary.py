"""What the report shows about the model and the batch before any check trains: a model summary (layers,
parameters, trainable / frozen), the first convolution's filters as an image grid (cs231n's first-layer
visualisation) and a thumbnail grid of an image batch. Images are small PNGs as ``data:`` URIs, encoded here with
zlib and struct (no imaging library)."""

from __future__ import annotations

import base64
import math
import struct
import zlib
from collections.abc import Iterable, Sequence

import torch

MAX_LAYERS = 40  # rows of the layer table; the totals always count every parameter
MAX_FILTERS = 64
MAX_THUMBNAILS = 16
THUMBNAIL_SIDE = 32  # larger images are pooled down to about this side
FILTER_SCALE = 4  # each filter pixel becomes a FILTER_SCALE × FILTER_SCALE block


def png(pixels: Sequence[Sequence[int]], channels: int) -> bytes:
    """A PNG of ``pixels`` (rows of 0–255 values, ``channels`` per pixel: 1 grey, 3 RGB), 8 bits per sample."""
    if channels not in (1, 3):
        raise ValueError("a PNG here is grey (1 channel) or RGB (3 channels)")
    height = len(pixels)
    width = len(pixels[0]) // channels if height else 0
    if not height or not width or any(len(row) != width * channels for row in pixels):
        raise ValueError("pixels must be a non-empty rectangle")
    raw = b"".join(b"\x00" + bytes(row) for row in pixels)  # filter type 0 (none) on every row

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 0 if channels == 1 else 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")


def data_uri(png_bytes: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png_bytes).decode("ascii")


def image_grid(images: torch.Tensor, *, scale: int = 1, gap: int = 1, columns: int | None = None) -> dict:
    """Tiles ``images`` (N × C × H × W, C 1 or 3, each already scaled to 0–1) into one PNG with a ``gap``-pixel
    border; every image pixel becomes a ``scale`` × ``scale`` block. Returns {png, count, columns, rows, size}."""
    n, c, h, w = images.shape
    cols = columns or max(1, math.ceil(math.sqrt(n)))
    rows = math.ceil(n / cols)
    cell_h, cell_w = h * scale, w * scale
    height, width = rows * cell_h + (rows + 1) * gap, cols * cell_w + (cols + 1) * gap
    canvas = torch.full((c, height, width), 1.0)  # white gaps
    big = images.repeat_interleave(scale, dim=2).repeat_interleave(scale, dim=3) if scale > 1 else images
    for k in range(n):
        r, q = divmod(k, cols)
        top, left = gap + r * (cell_h + gap), gap + q * (cell_w + gap)
        canvas[:, top:top + cell_h, left:left + cell_w] = big[k]
    data = (canvas.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).reshape(height, width * c)
    return {"png": data_uri(png(data.tolist(), c)), "count": n, "columns": cols, "rows": rows, "size": [h, w]}


def _per_image_scaled(x: torch.Tensor) -> torch.Tensor:
    """Each image stretched to 0–1 on its own (min to max), as cs231n shows filters and inputs."""
    flat = x.reshape(x.shape[0], -1)
    lo, hi = flat.amin(1, keepdim=True), flat.amax(1, keepdim=True)
    return ((flat - lo) / (hi - lo).clamp_min(1e-12)).reshape(x.shape)


def model_summary(models: Iterable[torch.nn.Module]) -> dict:
    """Counts and the layers that hold parameters: {parameters, trainable, frozen, layers: [{name, type,
    parameters, trainable}], more_layers}; shared parameters are counted once."""
    seen: set[int] = set()
    total = trainable = 0
    layers: list[dict] = []
    for m, model in enumerate(models):
        for name, module in model.named_modules():
            own = [p for p in module.parameters(recurse=False) if id(p) not in seen]
            if not own:
                continue
            seen.update(id(p) for p in own)
            count = sum(p.numel() for p in own)
            train = sum(p.numel() for p in own if p.requires_grad)
            total += count
            trainable += train
            label = name or type(model).__name__
            layers.append({"name": f"model {m + 1}: {label}" if m else label, "type": type(module).__name__,
                           "parameters": count, "trainable": train})
    return {"parameters": total, "trainable": trainable, "frozen": total - trainable, "layers": layers[:MAX_LAYERS],
            "more_layers": max(0, len(layers) - MAX_LAYERS)}


def first_layer_filters(model: torch.nn.Module) -> dict | None:
    """The first 2-D convolution over 1- or 3-channel images, its filters as one grid (None when the model has
    none: filters of deeper layers do not show anything a person can read)."""
    conv = next((m for m in model.modules() if isinstance(m, torch.nn.Conv2d)), None)
    if conv is None or conv.in_channels not in (1, 3) or conv.groups != 1:
        return None
    w = conv.weight.detach().float().cpu()[:MAX_FILTERS]
    grid = image_grid(_per_image_scaled(w), scale=FILTER_SCALE)
    layer = next((n for n, m in model.named_modules() if m is conv), "")
    return {**grid, "layer": layer, "total": int(conv.out_channels), "kernel": list(conv.kernel_size)}


def batch_thumbnails(x: torch.Tensor, batch_dim: int = 0) -> dict | None:
    """The first images of an image batch (N × C × H × W with C 1 or 3, batch first) as one grid, else None."""
    if batch_dim != 0 or x.dim() != 4 or x.shape[1] not in (1, 3) or not x.is_floating_point() or not x.numel():
        return None
    imgs = x[:MAX_THUMBNAILS].detach().float().cpu()
    if not torch.isfinite(imgs).all():
        imgs = torch.nan_to_num(imgs, nan=0.0, posinf=0.0, neginf=0.0)
    h, w = imgs.shape[-2:]
    factor = max(h, w) / THUMBNAIL_SIDE
    if factor > 1:
        imgs = torch.nn.functional.adaptive_avg_pool2d(imgs, (max(1, round(h / factor)), max(1, round(w / factor))))
    grid = image_grid(_per_image_scaled(imgs), scale=2 if max(imgs.shape[-2:]) <= 16 else 1,
                      columns=min(8, imgs.shape[0]))
    return {**grid, "original_size": [int(h), int(w)], "batch": int(x.shape[0])}


def output_layer(model: torch.nn.Module, output: torch.Tensor | None) -> dict | None:
    """The layer that makes the output (what the loss gets): the one ``nn.Linear`` with a bias whose
    ``out_features`` is the output's width (dim 1; 1 for a flat output), or None when none or several are."""
    if not isinstance(output, torch.Tensor) or not output.is_floating_point():
        return None
    width = int(output.shape[1]) if output.dim() >= 2 else 1
    found = [(name, m) for name, m in model.named_modules()
             if isinstance(m, torch.nn.Linear) and m.out_features == width and m.bias is not None]
    if len(found) != 1:
        return None
    name, layer = found[0]
    return {"name": name, "type": type(layer).__name__, "out_features": width}


def summarize(models: Sequence[torch.nn.Module], inputs: Sequence[torch.Tensor], batch_dim: int = 0,
              output: torch.Tensor | None = None) -> dict:
    """The report's ``summary``: the model summary, and when they apply the first-layer filters, thumbnails and
    the output layer (``output``: the tensor the loss gets)."""
    out: dict = {"model": model_summary(models)}
    final = output_layer(models[0], output) if len(models) == 1 else None
    if final:
        out["output_layer"] = final
    filters = first_layer_filters(models[0]) if models else None
    if filters:
        out["filters"] = filters
    thumbs = batch_thumbnails(inputs[0], batch_dim) if inputs else None
    if thumbs:
        out["thumbnails"] = thumbs
    return out
