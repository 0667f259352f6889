"""Unpaired image-to-image translation (a CycleGAN-style experiment): a dataset class of the script takes
its list of transforms and its split *by position*, and the experiment builds one list of transforms
(random crop and flip) for both loaders. The test loader, whose images ``sample_images()`` translates to
show progress, is built with the training list: every sample shown is randomly cropped and flipped.
``PairedFolders`` below gets a deterministic list for its test split and is fine.

Pattern seen in a public paper-implementations repository (recorded in the real-code manifest); this
script is written for the corpus.
"""

from pathlib import Path

import torch
import torch.nn as nn
import torchvision.transforms as transforms
from PIL import Image
from torch.utils.data import DataLoader, Dataset


class UnpairedImages(Dataset):
    def __init__(self, root: str, transforms_, mode: str):
        self.transform = transforms.Compose(transforms_)
        self.files_a = sorted((Path(root) / f"{mode}A").glob("*.jpg"))
        self.files_b = sorted((Path(root) / f"{mode}B").glob("*.jpg"))

    def __getitem__(self, index):
        a = Image.open(self.files_a[index % len(self.files_a)]).convert("RGB")
        b = Image.open(self.files_b[index % len(self.files_b)]).convert("RGB")
        return self.transform(a), self.transform(b)

    def __len__(self):
        return max(len(self.files_a), len(self.files_b))


class PairedFolders(Dataset):
    def __init__(self, root, transforms_, split, size=256):
        self.transform = transforms.Compose(transforms_)
        self.files = sorted((Path(root) / split).glob("*.png"))
        self.size = size

    def __getitem__(self, index):
        return self.transform(Image.open(self.files[index]).convert("RGB"))

    def __len__(self):
        return len(self.files)


class Experiment:
    def __init__(self, dataset_name: str, height: int = 256, width: int = 256, batch_size: int = 1):
        self.generator = nn.Sequential(nn.Conv2d(3, 64, 7, padding=3), nn.ReLU(), nn.Conv2d(64, 3, 7, padding=3), nn.Tanh())
        augment = [
            transforms.Resize(int(height * 1.12), transforms.InterpolationMode.BICUBIC),
            transforms.RandomCrop((height, width)),
            transforms.RandomHorizontalFlip(),
            transforms.ToTensor(),
            transforms.Normalize((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
        ]
        self.dataloader = DataLoader(UnpairedImages(dataset_name, augment, "train"), batch_size=batch_size, shuffle=True)
        self.valid_dataloader = DataLoader(
            UnpairedImages(dataset_name, augment, "test"),  # expect: SAN801
            batch_size=5,
            shuffle=True,
        )
        plain = [transforms.Resize((height, width)), transforms.ToTensor()]
        self.paired_train = PairedFolders(dataset_name, augment, "train")
        self.paired_test = PairedFolders(dataset_name, plain, "test")

    def sample_images(self):
        x, _ = next(iter(self.valid_dataloader))
        self.generator.eval()
        with torch.no_grad():
            fake = self.generator(x)
        self.generator.train()
        return fake
