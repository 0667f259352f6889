"""The abstract values (``analyzers/values.py``): what an expression holds, as a lattice of PyTorch kinds, on
realistic training code — through unpacking, helpers, attributes, parent classes (also in a sibling module),
containers, conditional expressions, default arguments and the standard wrappers; unknown stays unknown."""

from __future__ import annotations

import textwrap
from pathlib import Path

import libcst as cst
import pytest

from torchsanity.analyzers import Project
from torchsanity.analyzers.model import ProgramModel
from torchsanity.analyzers.value_lattice import EPOCH, STEP, TENSOR, TRANSPOSED, TUPLE, Value, join
from torchsanity.analyzers.values import values
from torchsanity.analyzers.torch_api import DATALOADER, DATASET, LOSS, MODEL, OPTIMIZER, SCHEDULER, SOFTMAX


def _sunk(source: str, program: ProgramModel | None = None) -> dict[str, Value | None]:
    """The values of the arguments of the last ``sink(...)`` call, by their source text."""
    program = program or ProgramModel.build(cst.parse_module(textwrap.dedent(source)))
    sink = [c for c in program.calls if program.code_for(c.func) == "sink"][-1]
    found = values(program)
    return {program.code_for(a.value): found.of(a.value) for a in sink.args}


def _kinds(sunk: dict[str, Value | None]) -> dict[str, str | None]:
    return {text: value.kind if value is not None else None for text, value in sunk.items()}


HEADER = """
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader

class Net(nn.Module):
    def __init__(self, classes=10):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Flatten(), nn.LazyLinear(classes))

    def forward(self, x):
        return self.body(x)
"""


def test_a_helper_that_builds_and_returns_the_model_and_its_optimizer():
    sunk = _sunk(HEADER + """
def build(lr):
    model = Net().to("cpu")
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=30)
    return model, optimizer, scheduler

model, optimizer, scheduler = build(3e-4)
net = model.train()
sink(model, optimizer, scheduler, net, build(1e-3))
""")
    assert _kinds(sunk) == {"model": MODEL, "optimizer": OPTIMIZER, "scheduler": SCHEDULER, "net": MODEL,
                            "build(1e-3)": TUPLE}
    assert sunk["model"].qualname == "Net" and sunk["model"].module.classdef is not None
    assert sunk["optimizer"].qualname == "torch.optim.AdamW"
    assert sunk["scheduler"].schedule == EPOCH
    warmup = _sunk(HEADER + """
from transformers import get_linear_schedule_with_warmup
opt = torch.optim.AdamW(Net().parameters(), lr=5e-5)
sink(get_linear_schedule_with_warmup(opt, 100, 1000), torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0))
""")
    assert [v.schedule for v in warmup.values()] == [STEP, None]  # LambdaLR: depends on the lambda
    assert [e.kind for e in sunk["build(1e-3)"].elements] == [MODEL, OPTIMIZER, SCHEDULER]


def test_wrappers_hand_on_what_they_wrap():
    sunk = _sunk(HEADER + """
from accelerate import Accelerator
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.autograd import Variable
from tqdm import tqdm

accelerator = Accelerator()
model = torch.compile(DDP(Net().cuda()))
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
loader = DataLoader(dataset, batch_size=32, shuffle=True)
model, optimizer, loader = accelerator.prepare(model, optimizer, loader)
x = Variable(F.softmax(torch.randn(4, 10), dim=1))
sink(model, optimizer, loader, tqdm(loader), x)
""")
    assert _kinds(sunk) == {"model": MODEL, "optimizer": OPTIMIZER, "loader": DATALOADER, "tqdm(loader)": DATALOADER,
                            "x": TENSOR}
    assert sunk["loader"].shuffle is True and sunk["loader"].sampler is False
    assert sunk["x"].activation == SOFTMAX


def test_fabric_setup():
    sunk = _sunk(HEADER + """
import lightning as L

fabric = L.Fabric(accelerator="cpu")
model, optimizer = fabric.setup(Net(), torch.optim.Adam(Net().parameters()))
train_loader = fabric.setup_dataloaders(DataLoader(dataset, batch_size=8))
sink(model, optimizer, train_loader)
""")
    assert _kinds(sunk) == {"model": MODEL, "optimizer": OPTIMIZER, "train_loader": DATALOADER}
    assert sunk["train_loader"].shuffle is False  # left out: DataLoader's default


def test_attributes_set_in_init_are_read_in_other_methods_and_subclasses():
    sunk = _sunk(HEADER + """
def make():
    net = Net()
    return net, torch.optim.SGD(net.parameters(), lr=0.1)

class Base:
    def __init__(self):
        self.criterion = nn.CrossEntropyLoss(label_smoothing=0.1)
        self.model, self.optimizer = make()

class Trainer(Base):
    def step(self, x, y):
        sink(self.criterion, self.model, self.optimizer, self.unknown)
""")
    assert _kinds(sunk) == {"self.criterion": LOSS, "self.model": MODEL, "self.optimizer": OPTIMIZER,
                            "self.unknown": None}
    assert sunk["self.criterion"].qualname == "torch.nn.CrossEntropyLoss"


def test_a_parent_class_in_a_sibling_module(tmp_path: Path):
    (tmp_path / "base.py").write_text(textwrap.dedent("""
        import torch.nn as nn

        class BaseTrainer:
            def __init__(self, model):
                self.criterion = nn.NLLLoss()
                self.model = model
    """))
    train = tmp_path / "train.py"
    train.write_text(textwrap.dedent("""
        from base import BaseTrainer

        class Trainer(BaseTrainer):
            def step(self, x, y):
                sink(self.criterion, self.model)
    """))
    project = Project(tmp_path)
    program = project.model_for(train)
    sunk = _sunk("", program)
    assert _kinds(sunk) == {"self.criterion": LOSS, "self.model": None}  # a parameter nobody here passes
    assert sunk["self.criterion"].qualname == "torch.nn.NLLLoss"


def test_containers_conditional_expressions_and_defaults():
    sunk = _sunk(HEADER + """
criteria = {"ce": nn.CrossEntropyLoss(), "mse": nn.MSELoss()}
pair = (Net(), nn.BCEWithLogitsLoss())
sampler = None
loader_kw = dict(batch_size=4)
train_loader = DataLoader(data, batch_size=4, shuffle=True) if train else DataLoader(data, batch_size=4)

def fit(model, loss_fn=nn.SmoothL1Loss()):
    sink(criteria["ce"], criteria["nll"], pair[0], pair[1], pair[-1], train_loader, loss_fn)

fit(Net())
""")
    assert _kinds(sunk) == {'criteria["ce"]': LOSS, 'criteria["nll"]': None, "pair[0]": MODEL, "pair[1]": LOSS,
                            "pair[-1]": LOSS, "train_loader": DATALOADER, "loss_fn": LOSS}
    assert sunk["train_loader"].shuffle is None  # the branches disagree: the facet is unknown, the kind is not
    assert sunk["loss_fn"].qualname == "torch.nn.SmoothL1Loss"


def test_branches_of_different_kinds_join_to_unknown():
    sunk = _sunk(HEADER + """
if args.loss == "ce":
    criterion = nn.CrossEntropyLoss()
else:
    criterion = Net()
thing = nn.MSELoss() if flag else torch.optim.SGD(params, lr=0.1)
sink(criterion, thing)
""")
    assert sunk == {"criterion": None, "thing": None}


def test_tensors_carry_their_activation_layout_and_detachment():
    sunk = _sunk(HEADER + """
class TwoHeads(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8, 4)

    def forward(self, x):
        return F.log_softmax(self.fc(x), dim=-1), self.fc(x)

model = TwoHeads()
log_probs, logits = model(batch)
probs = torch.softmax(logits, dim=1)
swapped = probs.transpose(0, 1)
kept = swapped.contiguous().detach().cpu()
sink(log_probs, probs, swapped, kept, probs.T, logits)
""")
    assert sunk["log_probs"] == Value(TENSOR, activation="log_softmax")
    assert sunk["probs"] == Value(TENSOR, activation=SOFTMAX)
    assert sunk["swapped"] == Value(TENSOR, activation=SOFTMAX, layout=TRANSPOSED)
    assert sunk["kept"] == Value(TENSOR, activation=SOFTMAX, detached=True)
    assert sunk["probs.T"].layout == TRANSPOSED
    assert sunk["logits"].activation == "logits"


@pytest.mark.parametrize("line", [
    "model, *rest = build()",  # star unpacking
    "model = build()[0] if ok else None",  # None joined with a module
    "model = load_from_elsewhere()",  # a call we cannot see into
])
def test_unknown_stays_unknown(line):
    sunk = _sunk(HEADER + f"""
def build():
    return Net(), torch.optim.SGD([], lr=0.1)

{line}
sink(model)
""")
    assert sunk == {"model": None}


def test_join_keeps_what_both_agree_on():
    adam = Value(OPTIMIZER, qualname="torch.optim.Adam")
    assert join(adam, Value(OPTIMIZER, qualname="torch.optim.Adam")) == adam
    assert join(adam, Value(OPTIMIZER, qualname="torch.optim.SGD")) == Value(OPTIMIZER)
    assert join(adam, Value(LOSS, qualname="torch.optim.Adam")) is None
    assert join(adam, None) is None
    pair = Value(TUPLE, elements=(adam, Value(TENSOR, layout=TRANSPOSED)))
    other = Value(TUPLE, elements=(Value(OPTIMIZER), Value(TENSOR)))
    assert join(pair, other) == Value(TUPLE, elements=(Value(OPTIMIZER), Value(TENSOR)))


def test_datasets_transforms_encodings_and_devices():
    sunk = _sunk("""
import torch
import torchvision.transforms as T
from torchvision import datasets
from torch.utils.data import DataLoader, Dataset, IterableDataset
from transformers import AutoTokenizer
from datasets import load_dataset

class Shards(IterableDataset):
    def __iter__(self):
        yield from range(10)

class Pairs(Dataset):
    def __getitem__(self, i):
        return i

class HardPairs(Pairs):
    pass

augment = T.Compose([T.RandomResizedCrop(224), T.RandomHorizontalFlip(), T.ToTensor()])
plain = T.Compose([T.Resize(256), T.CenterCrop(224), T.ToTensor()])
custom = T.Compose([T.Lambda(lambda x: x * 2), T.ToTensor()])
tta = T.Compose([T.RandomHorizontalFlip(p=1.0), T.ToTensor()])
held_out = datasets.CIFAR10("data", train=False, transform=plain)
loader = DataLoader(held_out, batch_size=64)
tokenizer = AutoTokenizer.from_pretrained("bert-base-uncased")
batch = tokenizer(["a sentence"], return_tensors="pt").to("cuda")
device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
web = load_dataset("c4", "en", split="train", streaming=True)
sink(augment, plain, custom, tta, held_out, loader, batch, device, Shards(), HardPairs(), web)
""")
    assert [sunk[k].random for k in ("augment", "plain", "custom", "tta")] == [True, False, None, False]
    assert (sunk["held_out"].kind, sunk["held_out"].split, sunk["held_out"].iterable) == (DATASET, "eval", False)
    assert (sunk["loader"].kind, sunk["loader"].split, sunk["loader"].shuffle) == (DATALOADER, "eval", False)
    assert sunk["batch"].kind == "encoding"  # BatchEncoding.to() moves it in place and returns it
    assert sunk["device"].kind == "device"
    assert (sunk["Shards()"].kind, sunk["Shards()"].iterable) == (DATASET, True)
    assert (sunk["HardPairs()"].kind, sunk["HardPairs()"].iterable) == (DATASET, False)
    assert (sunk["web"].split, sunk["web"].iterable) == ("train", True)


def test_an_optimizer_knows_the_modules_whose_parameters_it_holds():
    sunk = _sunk(HEADER + """
import itertools

class Critic(nn.Module):
    pass

def build():
    g, d = Net(), Critic()
    og = torch.optim.Adam(g.parameters(), lr=2e-4)
    od = torch.optim.Adam(filter(lambda p: p.requires_grad, d.parameters()), lr=2e-4)
    both = torch.optim.SGD(itertools.chain(g.parameters(), d.parameters()), lr=0.1)
    groups = torch.optim.SGD([{"params": g.parameters()}, {"params": d.parameters(), "lr": 1e-3}], lr=0.1)
    return og, od, both, groups

opt_g, opt_d, both, groups = build()
sink(opt_g, opt_d, both, groups, torch.optim.SGD(some_tensors, lr=0.1))
""")
    owners = {text: [m.qualname for m in value.params] if value.params else None for text, value in sunk.items()}
    assert owners == {"opt_g": ["Net"], "opt_d": ["Critic"], "both": ["Net", "Critic"], "groups": ["Net", "Critic"],
                      "torch.optim.SGD(some_tensors, lr=0.1)": None}


def test_calling_a_module_gives_what_its_forward_returns():
    sunk = _sunk(HEADER + """
class TwoHeads(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8, 4)
        self.aux = nn.Linear(8, 2)

    def forward(self, x):
        return self.fc(x), F.log_softmax(self.aux(x), dim=-1)

class Outputs(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8, 4)

    def forward(self, x, hidden):
        if hidden is None:
            return {"logits": self.fc(x), "probs": torch.softmax(self.fc(x), dim=-1)}
        return {"logits": self.fc(x) + hidden, "probs": F.softmax(self.fc(x), dim=-1)}

class Echo(nn.Module):
    def forward(self, x):
        return x

two = TwoHeads()
out = Outputs().to("cpu")
pair = two(batch)
logits, aux = two(batch)
res = out(batch, None)
sink(pair, logits, aux, res["probs"], res["logits"], Echo()(batch))
""")
    assert sunk["pair"] == Value(TUPLE, elements=(Value(TENSOR, activation="logits"), Value(TENSOR, activation="log_softmax")))
    assert (sunk["logits"].activation, sunk["aux"].activation) == ("logits", "log_softmax")
    assert sunk['res["probs"]'] == Value(TENSOR, activation=SOFTMAX)  # both returns agree
    assert sunk['res["logits"]'] == Value(TENSOR)  # `self.fc(x) + hidden`: a tensor, its activation unknown
    assert sunk["Echo()(batch)"] is None  # returns its input: unknown


def test_what_a_loop_iterates_through_enumerate_tqdm_iter_and_zip():
    program = ProgramModel.build(cst.parse_module(textwrap.dedent(HEADER + """
from tqdm import tqdm

def loaders(data):
    return DataLoader(data, batch_size=8, shuffle=True), DataLoader(data, batch_size=8)

train_loader, val_loader = loaders(dataset)
for i, (x, y) in enumerate(tqdm(train_loader)):
    pass
for a, b in zip(train_loader, range(10)):
    pass
for batch in iter(val_loader):
    pass
""")))
    found = values(program)
    first, second, third = (loop.iter for loop in program.loops)
    assert (found.iterated(first).kind, found.iterated(first).shuffle) == (DATALOADER, True)
    assert [e.kind if e else None for e in found.iterated(second).elements] == [DATALOADER, None]
    assert (found.iterated(third).kind, found.iterated(third).shuffle) == (DATALOADER, False)
