"""The PyTorch API the rules know, in one place: qualified names of constructors, functions and methods.

Every table here is a fact about a library (``torch.optim.Adam`` builds an optimizer, ``torch.no_grad``
disables gradients); nothing here guesses from the names people choose (that is
:mod:`~torchsanity.analyzers.name_guesses`). Names are qualified as the program model resolves them
through a module's imports (``nn.CrossEntropyLoss`` → ``torch.nn.CrossEntropyLoss``).
"""

from __future__ import annotations

import re

# ---- what a bound name holds, as far as the rules care --------------------------------------------

OPTIMIZER = "optimizer"
SCHEDULER = "scheduler"
MODEL = "model"
LOSS = "loss"
DATALOADER = "dataloader"
DATASET = "dataset"

OPTIMIZER_PREFIXES = ("torch.optim.", "bitsandbytes.optim.", "apex.optimizers.", "timm.optim.")
OPTIMIZER_NAMES = frozenset(
    {"transformers.AdamW", "transformers.Adafactor", "transformers.optimization.AdamW",
     "timm.optim.create_optimizer_v2", "timm.optim.create_optimizer"}
)
SCHEDULER_PREFIXES = ("torch.optim.lr_scheduler.", "timm.scheduler.")
SCHEDULER_NAMES = frozenset(
    {
        "transformers.get_linear_schedule_with_warmup",
        "transformers.get_cosine_schedule_with_warmup",
        "transformers.get_constant_schedule_with_warmup",
        "transformers.get_polynomial_decay_schedule_with_warmup",
        "transformers.get_scheduler",
        "transformers.optimization.get_linear_schedule_with_warmup",
        "transformers.optimization.get_cosine_schedule_with_warmup",
        "transformers.optimization.get_scheduler",
    }
)
MODEL_PREFIXES = ("torchvision.models.", "timm.create_model", "transformers.AutoModel")
DATALOADER_NAMES = frozenset({"torch.utils.data.DataLoader", "torch.utils.data.dataloader.DataLoader"})
# Datasets: the base classes people derive from, the ones that stream, and the packages whose calls build one.
DATASET_NAMES = frozenset({"torch.utils.data.Dataset", "torch.utils.data.dataset.Dataset", "torch.utils.data.IterableDataset",
                           "torch.utils.data.dataset.IterableDataset", "torch.utils.data.TensorDataset",
                           "torch.utils.data.ConcatDataset", "torch.utils.data.Subset", "datasets.load_dataset"})
ITERABLE_DATASETS = frozenset({"torch.utils.data.IterableDataset", "torch.utils.data.dataset.IterableDataset"})
DATASET_PREFIXES = ("torchvision.datasets.", "torchaudio.datasets.", "torchtext.datasets.")
NN_MODULE_BASES = frozenset(
    {"torch.nn.Module", "torch.nn.modules.module.Module", "pytorch_lightning.LightningModule",
     "lightning.LightningModule", "lightning.pytorch.LightningModule", "torch.nn.Sequential"}
)

# Methods that return the module they are called on (``Net().to(device)``, ``model.eval()``), as the program
# model follows them to tell what a name holds.
MODULE_RETURNING_METHODS = frozenset({"to", "cuda", "cpu", "double", "float", "half", "train", "eval"})
# Wrappers whose first argument is the module they wrap.
MODULE_WRAPPERS = frozenset({"torch.compile", "torch.nn.DataParallel", "torch.nn.parallel.DistributedDataParallel"})


def kind_of_constructor(qualname: str | None) -> str | None:
    """The kind of object a call to ``qualname`` builds (optimizer, scheduler, loss, ...)."""
    if not qualname:
        return None
    if qualname.startswith(SCHEDULER_PREFIXES) or qualname in SCHEDULER_NAMES:
        return SCHEDULER
    if qualname.startswith(OPTIMIZER_PREFIXES) or qualname in OPTIMIZER_NAMES:
        if qualname.count(".") >= 2 and qualname.split(".")[-1][:1].isupper() or qualname in OPTIMIZER_NAMES:
            return OPTIMIZER
        return None
    if qualname in DATALOADER_NAMES:
        return DATALOADER
    if qualname.startswith("torch.nn.") and not qualname.startswith("torch.nn.functional"):
        last = qualname.rsplit(".", 1)[-1]
        if last.endswith("Loss"):
            return LOSS
        if last[:1].isupper() and not qualname.startswith(("torch.nn.init", "torch.nn.utils", "torch.nn.parallel.")):
            return MODEL
    if qualname.startswith(MODEL_PREFIXES):
        return MODEL
    return None


# ---- gradients and seeds ------------------------------------------------------------------------

NO_GRAD_CONTEXTS = frozenset(
    {"torch.no_grad", "torch.inference_mode", "torch.autograd.no_grad", "torch.autograd.grad_mode.no_grad",
     "torch.autograd.inference_mode"}
)
SET_GRAD_CONTEXTS = frozenset({"torch.set_grad_enabled", "torch.autograd.set_grad_enabled"})
ENABLE_GRAD_CONTEXTS = frozenset({"torch.enable_grad", "torch.autograd.enable_grad"})
TORCH_SEEDS = frozenset(
    {"torch.manual_seed", "torch.cuda.manual_seed", "torch.cuda.manual_seed_all", "torch.random.manual_seed",
     "torch.mps.manual_seed", "torch.xpu.manual_seed", "torch.xpu.manual_seed_all"}
)


def seeded_by(qualname: str | None) -> str | None:
    """The generator a call of ``qualname`` seeds when it is one of their seeding functions: "torch" (any
    ``manual_seed``), "random" or "numpy"; None otherwise."""
    if not qualname:
        return None
    if qualname in TORCH_SEEDS or qualname.rsplit(".", 1)[-1] == "manual_seed":
        return "torch"
    return {"random.seed": "random", "numpy.random.seed": "numpy"}.get(qualname)


# Entry points that seed every generator themselves (``LightningCLI(seed_everything_default=...)``).
SEEDING_CLIS = ("LightningCLI", "cli_main")
# calls that run a function of ours in worker processes (its first argument): the workers train
PROCESS_SPAWNERS = frozenset({"torch.multiprocessing.spawn", "torch.multiprocessing.start_processes",
                              "torch.multiprocessing.spawn.spawn"})
# Packages whose ``*Trainer`` classes (``transformers.Trainer``, ``Seq2SeqTrainer``, trl's ``SFTTrainer``) seed every
# generator from ``TrainingArguments.seed`` when they are built (``set_seed`` in ``Trainer.__init__``).
SEEDING_TRAINER_PACKAGES = ("transformers", "trl")


def seeds_when_built(qualname: str) -> bool:
    """Whether constructing the class ``qualname`` seeds the run (a Hugging Face ``Trainer`` and its kin)."""
    return qualname.partition(".")[0] in SEEDING_TRAINER_PACKAGES and qualname.rsplit(".", 1)[-1].endswith("Trainer")


# Configuration classes whose ``run()`` runs the whole training loop: labml's ``TrainValidConfigs`` calls the
# subclass's ``step()`` on every batch of its training loader, epoch after epoch (as Lightning's ``Trainer.fit`` does).
CONFIG_TRAINING_RUNS = frozenset({
    f"{module}.{cls}" for module in ("labml_helpers.train_valid", "labml_nn.helpers.trainer")
    for cls in ("TrainValidConfigs", "SimpleTrainValidConfigs")
})
# What such a framework calls besides the training loop, and whether it disables gradients there: labml's
# ``run_step()`` calls ``sample()`` (inference: "generate samples every time it switches between training and
# validation") with gradients on, and ``step()`` under ``set_grad_enabled(is_train)`` (cannot tell).
CONFIG_HOOKS = {"sample": False, "step": None}
# Schedulers whose horizon (``step_size``, ``milestones``, ``T_max``, ...) is usually counted in epochs.
EPOCH_SCHEDULERS = frozenset({"StepLR", "MultiStepLR", "ExponentialLR", "CosineAnnealingLR", "PolynomialLR"})
# Schedulers built to be stepped every batch: their horizon is a number of optimizer steps.
STEP_SCHEDULERS = frozenset({"OneCycleLR", "CyclicLR", "get_linear_schedule_with_warmup", "get_cosine_schedule_with_warmup",
                             "get_constant_schedule_with_warmup", "get_polynomial_decay_schedule_with_warmup"})
# Calls that wrap a loader and yield its batches (``for i, batch in enumerate(tqdm(loader))``).
LOADER_WRAPPERS = frozenset({"enumerate", "tqdm", "tqdm.tqdm", "tqdm.auto.tqdm", "iter", "zip"})
# Progress-bar wrappers of an iterable (``for epoch in tqdm(range(n))``).
TQDM_CALLS = frozenset({"tqdm.tqdm", "tqdm", "tqdm.auto.tqdm", "tqdm.trange"})
# Packages whose ``Trainer.fit`` runs the training loop.
LIGHTNING_PACKAGES = ("pytorch_lightning", "lightning")

# Words in the names of ``torch.nn.functional`` losses (``cross_entropy``, ``mse_loss``, ``kl_div``).
_FUNCTIONAL_LOSS_WORDS = re.compile(r"(loss|cross_entropy|mse|nll|l1|bce|kl_div|criterion)", re.I)


def is_functional_loss(qualname: str) -> bool:
    """Whether ``qualname`` is a loss function of ``torch.nn.functional`` (``F.cross_entropy``)."""
    return qualname.startswith("torch.nn.functional.") and bool(_FUNCTIONAL_LOSS_WORDS.search(qualname.rsplit(".", 1)[-1]))


# ---- activations and losses ---------------------------------------------------------------------

SOFTMAX = "softmax"
LOG_SOFTMAX = "log_softmax"
SIGMOID = "sigmoid"
LOGITS = "logits"
FUNCTIONAL_ACTIVATIONS = {
    "torch.softmax": SOFTMAX,
    "torch.nn.functional.softmax": SOFTMAX,
    "torch.special.softmax": SOFTMAX,
    "torch.log_softmax": LOG_SOFTMAX,
    "torch.nn.functional.log_softmax": LOG_SOFTMAX,
    "torch.special.log_softmax": LOG_SOFTMAX,
    "torch.sigmoid": SIGMOID,
    "torch.nn.functional.sigmoid": SIGMOID,
    "torch.special.expit": SIGMOID,
}
ACTIVATION_METHODS = {"softmax": SOFTMAX, "log_softmax": LOG_SOFTMAX, "sigmoid": SIGMOID}
LAYER_ACTIVATIONS = {
    "torch.nn.Softmax": SOFTMAX,
    "torch.nn.LogSoftmax": LOG_SOFTMAX,
    "torch.nn.Sigmoid": SIGMOID,
    "torch.nn.Linear": LOGITS,
    "torch.nn.LazyLinear": LOGITS,
    "torch.nn.Bilinear": LOGITS,
    "torch.nn.Conv1d": LOGITS,
    "torch.nn.Conv2d": LOGITS,
    "torch.nn.Conv3d": LOGITS,
}
# Ops that keep what a tensor is (probabilities stay probabilities).
ACTIVATION_KEEPING_METHODS = frozenset(
    {"float", "double", "half", "bfloat16", "to", "cuda", "cpu", "squeeze", "unsqueeze", "view", "reshape",
     "flatten", "contiguous", "clone"}
)
# The same for the dataflow's ``module_of``, which follows a few more: dtype casts, ``requires_grad_``,
# ``to_empty`` and ``torch.nn.parallel.DataParallel``. (Two tables because the two analyses grew apart; making
# them one would change what the program model finds.)
DATAFLOW_MODULE_WRAPPERS = frozenset({"torch.compile", "torch.nn.DataParallel", "torch.nn.parallel.DistributedDataParallel",
                       "torch.nn.parallel.DataParallel"})
DATAFLOW_MODULE_MOVES = frozenset({"to", "cuda", "cpu", "train", "eval", "float", "double", "half", "bfloat16",
                           "requires_grad_", "to_empty"})

# For the abstract values (:mod:`.values`): tensor methods that return the tensor moved, cast, made contiguous or
# detached; methods that reorder a tensor's dims without copying; calls that hand on the value they wrap.
TENSOR_MOVES = frozenset({"to", "cuda", "cpu", "float", "double", "half", "bfloat16", "contiguous", "detach", "clone"})
TRANSPOSING_METHODS = frozenset({"transpose", "permute", "t", "swapaxes", "swapdims", "movedim"})
VALUE_PASSING_WRAPPERS = frozenset({"torch.autograd.Variable", "tqdm", "tqdm.tqdm", "tqdm.auto.tqdm"})

# Augmentation libraries, and their random transforms beyond the `Random*` / `Rand*` names.
AUGMENTATION_LIBRARIES = ("torchvision.transforms.", "albumentations.", "kornia.augmentation.", "monai.transforms.")
RANDOM_AUGMENTATIONS = frozenset({
    "ColorJitter", "RandAugment", "AutoAugment", "TrivialAugmentWide", "AugMix", "ElasticTransform",
    # albumentations: random with p=0.5 by default
    "HorizontalFlip", "VerticalFlip", "Flip", "ShiftScaleRotate", "Rotate", "HueSaturationValue",
    "CoarseDropout", "GaussNoise", "Affine", "Perspective", "GridDistortion", "OpticalDistortion", "Cutout",
})
# Deterministic once applied: with p=1 they are a fixed operation (e.g. a flip for TTA).
FIXED_WHEN_ALWAYS = frozenset({
    "RandomHorizontalFlip", "RandomVerticalFlip", "RandomGrayscale", "HorizontalFlip", "VerticalFlip",
    "RandomInvert", "RandomSolarize", "RandomPosterize", "RandomAutocontrast", "RandomEqualize",
    "RandomAdjustSharpness", "ToGray",
})
TRANSFORM_PIPELINES = frozenset({"torchvision.transforms.Compose", "torchvision.transforms.v2.Compose",
                                 "albumentations.Compose", "torch.nn.Sequential"})

CROSS_ENTROPY = "cross_entropy"
NLL = "nll"
BCE_WITH_LOGITS = "bce_with_logits"
BCE = "bce"
LOSS_FUNCTIONS = {
    "torch.nn.functional.cross_entropy": CROSS_ENTROPY,
    "torch.nn.functional.nll_loss": NLL,
    "torch.nn.functional.binary_cross_entropy_with_logits": BCE_WITH_LOGITS,
    "torch.nn.functional.binary_cross_entropy": BCE,
}
LOSS_CLASSES = {
    "torch.nn.CrossEntropyLoss": CROSS_ENTROPY,
    "torch.nn.modules.loss.CrossEntropyLoss": CROSS_ENTROPY,
    "torch.nn.NLLLoss": NLL,
    "torch.nn.modules.loss.NLLLoss": NLL,
    "torch.nn.BCEWithLogitsLoss": BCE_WITH_LOGITS,
    "torch.nn.modules.loss.BCEWithLogitsLoss": BCE_WITH_LOGITS,
    "torch.nn.BCELoss": BCE,
    "torch.nn.modules.loss.BCELoss": BCE,
}
