"""A plain class whose ``run()`` only writes samples: calling it trains nothing, so nothing here asks for a seed."""

import torch


class SampleWriter:
    def __init__(self, path: str):
        self.path = path

    def run(self):
        torch.save(torch.arange(10), self.path)


if __name__ == "__main__":
    writer = SampleWriter("samples.pt")
    writer.run()
