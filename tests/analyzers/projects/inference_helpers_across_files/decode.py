"""Decoding helpers of a small translation package. Each switches the model to eval mode itself and takes the
argmax of its output: ``greedy_decode`` is called by nobody in the project, so it is judged on its own (autograd
stays on for whoever calls it); ``beam_decode`` is only called by app.py, under ``torch.no_grad()``."""

import torch


def greedy_decode(model, src, max_len=32):  # expect: SAN202
    model.eval()
    ys = torch.ones(src.size(0), 1, dtype=torch.long)
    for _ in range(max_len):
        logits = model(src, ys)
        next_token = logits[:, -1].argmax(-1, keepdim=True)
        ys = torch.cat([ys, next_token], dim=1)
    return ys


def beam_decode(model, src, beam=4):
    model.eval()
    scores = model(src, torch.ones(src.size(0), 1, dtype=torch.long)).log_softmax(-1)
    return scores[:, -1].topk(beam, dim=-1).indices
