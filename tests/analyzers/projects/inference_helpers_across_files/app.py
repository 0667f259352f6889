"""A command-line translator: it decodes under torch.no_grad()."""

import sys

import torch

from decode import beam_decode


def main(model, sentences):
    with torch.no_grad():
        for src in sentences:
            print(beam_decode(model, src).tolist())


if __name__ == "__main__":
    main(torch.load(sys.argv[1], weights_only=False), [torch.randint(3, 100, (1, 12))])
