"""Image-classification data module: each dataset class builds its transform pipelines in helper methods
and stores them as ``self.train_transform`` / ``self.test_transform``. ``Digits`` hands the helper that
holds the random crop and flip to its test set as well (its test images are augmented at random);
``Shapes`` has a separate deterministic test helper, and ``build_transform()`` adds its random crop only for
training, so both are fine.

Pattern seen in public classification repositories (a test set built with the default — random — pipeline,
fixed by giving it its own helper); this script is written for the corpus.
"""

import torch
import torchvision
import torchvision.transforms as T


class Digits:
    def __init__(self, root):
        self.root = root
        self.train_transform = self._default_transform()
        self.test_transform = self._default_transform()

    def _default_transform(self):
        transform = T.Compose([
            T.RandomCrop(28, padding=4),  # expect: SAN801
            T.RandomHorizontalFlip(),  # expect: SAN801
            T.ToTensor(),
            T.Normalize((0.2860,), (0.3530,)),
        ])
        return transform

    def datasets(self):
        train = torchvision.datasets.FashionMNIST(self.root, train=True, transform=self.train_transform, download=True)
        test = torchvision.datasets.FashionMNIST(self.root, train=False, transform=self.test_transform, download=True)
        return train, test


class Shapes:
    def __init__(self, root):
        self.root = root
        self.train_transform = self._augmenting_transform()
        self.test_transform = self._plain_transform()

    def _augmenting_transform(self):
        transform = T.Compose([T.RandomCrop(28, padding=4), T.ToTensor()])
        return transform

    def _plain_transform(self):
        return T.Compose([T.ToTensor()])


def build_transform(is_train):
    steps = [T.ToTensor(), T.Normalize((0.5,), (0.5,))]
    if is_train:
        steps.insert(0, T.RandomHorizontalFlip())
    return T.Compose(steps)


train_tf = build_transform(True)
test_tf = build_transform(False)

train_set, test_set = Digits("data").datasets()
loader = torch.utils.data.DataLoader(train_set, batch_size=64, shuffle=True)
