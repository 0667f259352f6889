"""Builds the index: chunks a text, embeds the chunks with ``PassageEncoder`` (gradients off) and stacks them."""

import numpy as np
import torch

from encoders import PassageEncoder


def build_index(text: str, chunk_length: int = 64, batch_size: int = 32):
    encoder = PassageEncoder(torch.device("cuda" if torch.cuda.is_available() else "cpu"))
    chunks = [text[i:i + chunk_length] for i in range(0, len(text), chunk_length)]
    with torch.no_grad():
        embeddings = [encoder(chunks[i:i + batch_size]).cpu() for i in range(0, len(chunks), batch_size)]
    return np.concatenate([e.numpy() for e in embeddings])


if __name__ == "__main__":
    print(build_index("a long text " * 1000).shape)
