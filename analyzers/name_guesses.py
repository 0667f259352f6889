"""Every guess made from the names people choose, in one place.

When the program model cannot tell what a name holds (a model passed in as a parameter, a loader built by
a helper of another package), the rules fall back on what the name says: ``model``, ``optimizer``,
``val_loader``. These are guesses: a name can lie, so each one here says what it takes for evidence and
the rules use them only where a wrong guess costs a missed finding rather than a wrong one (or where the
rule's own page lists the guess under *Known problems*). What the code itself proves (constructors,
imports) lives in :mod:`~torchsanity.analyzers.torch_api` and the program model, never here.
"""

from __future__ import annotations

import re

_NOT_MODEL_RECEIVERS = re.compile(r"trainer|runner|learner|agent|engine|pipeline|solver|experiment|^exp$|env", re.I)
_MODEL_NAME = re.compile(
    r"^(model|net|network|module|encoder|decoder|classifier|backbone|generator|discriminator|policy|critic|actor"
    r"|student|teacher|unet|resnet|vae|cnn|mlp|lstm|rnn|gnn|transformer)$|^(net|model)_?[a-z0-9]{0,6}$"
    r"|^[a-z]+_(model|net)$", re.I)
_VERB = re.compile(r"(get|build|create|make|load|init|setup|define|prepare|save|train|eval|evaluate|test|validate"
                   r"|wrap|compile|export|run|update|copy|freeze|print|log)_", re.I)
_OPTIMIZER_NAME = re.compile(r"(optim|optimizer|optimiser)|^opt$|^opt_?[a-z0-9]{0,3}$|_opt$", re.I)
_OPTION = re.compile(r"option", re.I)
_SCHEDULER_NAME = re.compile(r"sched|lr_scheduler|scheduler|^lrs$|^lr_sched", re.I)
_SCALER_NAME = re.compile(r"scaler", re.I)
_ZERO_HELPER = re.compile(r"zero_grad|zero_?grads|clear_?grad|reset_?grad", re.I)
_BACKWARD_OWNER = re.compile(r"accelerator|fabric|engine|^self$", re.I)
_LOADER = re.compile(r"loader|(^|_)dl($|_)|dataloader|batches|(^|_)ds($|_)|dataset|data_iter|iterator", re.I)
_EVAL_FUNCTION = re.compile(
    r"^(eval|evaluate|evaluation|validate|validation|val|valid|test|predict|inference|infer)"
    r"(_(epoch|one_epoch|model|loop|loader|fn|net|all|dataset|set))?$"
    r"|^(run|do)_(eval|evaluation|validation|val|test|inference)(_epoch)?$"
    r"|^(evaluate|validate|predict)_\w+$",
    re.I,
)
_EVAL_LOADER = re.compile(r"(^|_)(val|valid|validation|test|eval|dev|holdout)(_|$)", re.I)
_EVAL_LOADER_KIND = re.compile(r"load|(^|_)dl($|_)|data|set|ds($|_)|iter|batches", re.I)
_EVAL_SPLIT = re.compile(r"(val|valid|validation|test|eval|dev)", re.I)
_GRAD_NAME = re.compile(r"requires_grad|enable_grad|register_hook")
_ACCELERATOR = re.compile(r"accelerator", re.I)
_LOSS_FUNCTION_NAME = re.compile(r"(criterion|loss_fn|loss_func|lossfn|criteria|loss_function)")
_ACCUMULATION_COUNT = re.compile(r"accum|(^|_)grad(ient)?_acc(_|$)", re.I)
_NOT_A_COUNT = re.compile(r"loss|token|sample|example|item|elem|seq|word|len|size|norm|weight|total|sum", re.I)
_NETWORK_NAME = re.compile(
    r"^(model|net|network|module|encoder|decoder|backbone|classifier|generator|discriminator|critic|actor"
    r"|policy|head|teacher|student|unet|transformer|resnet|vae|autoencoder)s?(_?[a-z0-9]{0,2})?$"
    r"|_(model|net|network|encoder|decoder|backbone|classifier)$"
)
_EPOCH = re.compile(r"epoch", re.I)
_PER_ITERATION = re.compile(r"step|iter|batch|len|total", re.I)


def _last(name: str) -> str:
    return name.rsplit(".", 1)[-1]


# ---- objects ------------------------------------------------------------------------------------


def looks_like_model(name: str) -> bool:
    """``model``, ``net``, ``encoder``, ``resnet``, ``model_ema``, ``text_model``: a guess, because a network
    passed in as a parameter or built by another package's helper has no constructor to read. Names that
    start with a verb (``build_model``) or a capital (a class) are not models."""
    last = _last(name)
    return bool(_MODEL_NAME.search(last)) and not _VERB.match(last) and not last[:1].isupper()


def looks_like_model_owner(name: str) -> bool:
    """``trainer``, ``runner``, ``engine``, ``env``: objects whose ``train()`` / ``eval()`` / ``step()`` are their
    own methods, not a network's modes. A guess: such a name might still hold an ``nn.Module``."""
    return bool(_NOT_MODEL_RECEIVERS.search(_last(name)))


def looks_like_optimizer(name: str) -> bool:
    """``optimizer``, ``optim``, ``opt``, ``opt_g``, ``d_opt`` (not ``options``): a guess for optimizers the program
    model cannot see built (a parameter, ``configure_optimizers``' result)."""
    last = _last(name)
    return bool(_OPTIMIZER_NAME.search(last)) and not _OPTION.search(last)


def looks_like_scheduler(name: str) -> bool:
    """``scheduler``, ``lr_sched``, ``lrs``: a guess for schedulers built where the program model cannot see."""
    return bool(_SCHEDULER_NAME.search(_last(name)))


def looks_like_scaler(name: str) -> bool:
    """``scaler`` (an AMP ``GradScaler``, whose ``step(opt)`` steps ``opt``): a guess when its constructor is
    out of sight."""
    return bool(_SCALER_NAME.search(_last(name)))


def clears_gradients(function_name: str) -> bool:
    """``zero_grad``, ``clear_grads``, ``reset_grad``: a helper we cannot read whose name says it clears
    gradients. A guess: trusting it costs a missed SAN101, never a false one."""
    return bool(_ZERO_HELPER.search(_last(function_name)))


def backward_takes_the_loss(receiver: str) -> bool:
    """``accelerator.backward(loss)``, ``fabric.backward(loss)``, ``self.backward(loss)`` (Lightning): a
    ``backward`` whose argument, not its receiver, is the loss. A guess from the receiver's name."""
    return bool(_BACKWARD_OWNER.search(_last(receiver)))


def looks_like_accelerator(name: str) -> bool:
    """``accelerator``, ``self.accelerator``: an HF Accelerate ``Accelerator``, whose ``backward`` scales the
    loss for accumulation itself. A guess when its constructor is out of sight."""
    return bool(_ACCELERATOR.search(name))


def looks_like_loss_function(name: str) -> bool:
    """``criterion``, ``loss_fn``, ``self.loss_func``: a callable computing a loss, built where the program
    model cannot see (a parameter, a config factory). A guess from the last part of the name."""
    return bool(_LOSS_FUNCTION_NAME.fullmatch(_last(name)))


def counts_accumulation_steps(name: str) -> bool:
    """``accum_steps``, ``args.gradient_accumulation_steps``, ``grad_acc``, ``iters_to_accumulate``: the number
    of micro-batches accumulated per optimizer step. A guess from the last part of the name; names that also
    speak of losses, tokens, samples or sizes (``accumulated_tokens``, ``accum_loss``) count something else."""
    last = _last(name)
    return bool(_ACCUMULATION_COUNT.search(last)) and not _NOT_A_COUNT.search(last)


def says_network(name: str) -> bool:
    """``model``, ``netG``, ``self.backbone``'s ``backbone``, ``text_encoder``: a lower-cased name that by
    itself says "a network" (SAN703's test, stricter about suffixes than :func:`looks_like_model`). A guess:
    any object may be called ``head``."""
    return bool(_NETWORK_NAME.match(name))


def names_a_seeding_call(qualname: str | None) -> bool:
    """``seed_everything``, ``set_seed``, ``utils.seed_all``, ``conf.set_seed.set()`` (a seed configuration applied,
    labml's ``SeedConfigs``): a call whose name says it seeds every generator. A guess (SAN401 / SAN402); never a
    function of ``random`` / ``numpy`` (``default_rng``, ``SeedSequence``)."""
    if not qualname or qualname.startswith(("random.", "numpy.")):
        return False
    head, _, last = qualname.rpartition(".")
    if last == "set":
        return "seed" in head.rsplit(".", 1)[-1].lower()
    return "seed" in last.lower() and last not in ("default_rng", "SeedSequence")


def names_a_module_base(qualname: str) -> bool:
    """A base class whose name says it is an ``nn.Module`` of another package (``labml_helpers.module.Module``,
    ``BaseModule``, ``LightningModule``): its subclasses have ``self.training``. A guess (SAN204)."""
    return qualname.rsplit(".", 1)[-1].endswith("Module")


def speaks_of_dropping(*names: str) -> bool:
    """``dropout_layers``, ``drop_prob``, ``layer_dropout``: a helper or a rate named for dropping (not a random
    mask of a pre-training task). A guess (SAN204)."""
    return any("drop" in name.lower() for name in names)


_BATCH_NORM_CLASS = re.compile(r"^(?!Frozen)\w*BatchNorm(1d|2d|3d)?$")


def names_a_batch_norm(qualname: str) -> bool:
    """A class of another package or of the project named like a batch norm (``labml_nn...BatchNorm``,
    ``GhostBatchNorm``, ``apex.parallel.SyncBatchNorm``): it normalizes with the batch's statistics, so a bias
    before it cancels out. ``FrozenBatchNorm2d`` (fixed statistics) is not one. A guess (SAN701)."""
    return not qualname.startswith("torch.") and bool(_BATCH_NORM_CLASS.match(qualname.rsplit(".", 1)[-1]))


def counts_epochs(text: str) -> bool:
    """``args.epochs``, ``num_epochs // 3``: names that count epochs, with nothing per-iteration (``steps``,
    ``len(...)``, ``total``) among them. A guess: a name is all that says what a number counts."""
    return bool(_EPOCH.search(text)) and not _PER_ITERATION.search(text)


def looks_like_loader(name: str) -> bool:
    """``train_loader``, ``dl``, ``batches``, ``dataset``, ``data_iter``: a loop over batches. A guess for
    loaders built out of sight (``get_dataloader(...)``, a parameter)."""
    return bool(_LOADER.search(_last(name)))


# ---- evaluation code ----------------------------------------------------------------------------


def looks_like_eval_function(name: str) -> bool:
    """``evaluate``, ``validate``, ``test_epoch``, ``run_validation``, ``predict_batch``: a function written
    to evaluate a model. A guess: what the function does (a forward and no backward) is checked as well."""
    return bool(_EVAL_FUNCTION.match(name))


def mentions_eval_split(name: str) -> bool:
    """``val``, ``test_x``, ``dev_data``: a name with a validation / test / dev part (the cheap text scan's
    test, before anything is parsed)."""
    return bool(_EVAL_LOADER.search(name))


def looks_like_eval_loader(name: str) -> bool:
    """``val_loader``, ``test_dl``, ``loaders.valid_set``, ``dataloaders['val']`` (as ``dataloaders.val``): a
    dotted name of evaluation data. A guess, for loaders whose role no constructor tells."""
    parts = name.split(".")
    last = parts[-1]
    if _EVAL_LOADER.search(last) and (_EVAL_LOADER_KIND.search(last) or len(parts) > 1 and _EVAL_LOADER_KIND.search(parts[-2])):
        return True
    return len(parts) > 1 and bool(_EVAL_SPLIT.fullmatch(last)) and bool(_EVAL_LOADER_KIND.search(parts[-2]))


def asks_for_grad(name: str) -> bool:
    """A name containing ``requires_grad`` / ``enable_grad`` / ``register_hook``: code that wants gradients,
    so it is not evaluation code. A guess from a name, which may belong to anything."""
    return bool(_GRAD_NAME.search(name))


# ---- roles of data ------------------------------------------------------------------------------

TRAIN_ROLE = "train"
EVAL_ROLE = "eval"
_TRAIN_TOKENS = frozenset({"train", "training", "trn", "tr"})
EVAL_TOKENS = frozenset({"val", "valid", "validation", "validate", "test", "testing", "eval", "evaluation", "dev",
                         "holdout", "calib", "calibration", "infer", "inference", "predict", "pred", "prediction"})


def name_tokens(name: str) -> list[str]:
    """``train_loader`` → [train, loader]; ``valLoader`` → [val, loader]; ``testset`` → [test, set]."""
    parts = re.split(r"[^A-Za-z0-9]+|(?<=[a-z])(?=[A-Z])|\d+", name)
    out: list[str] = []
    for part in parts:
        part = part.lower()
        if not part:
            continue
        for suffix in ("dataloader", "loader", "dataset", "transforms", "transform", "set", "data", "ds", "dl",
                       "tfms", "tfm", "tf", "aug", "iter", "dir", "path", "root", "folder"):
            if part.endswith(suffix) and len(part) > len(suffix):
                out.extend([part[: -len(suffix)], suffix])
                break
        else:
            out.append(part)
    return out


def name_role(name: str | None) -> str | None:
    """TRAIN_ROLE / EVAL_ROLE from a name (``train_loader``, ``valset``, ``'validation'``), else None. A guess:
    the role of a dataset or loader is nowhere in the code but its name. Test-time augmentation (``tta``)
    and names mixing both roles say nothing."""
    if not name:
        return None
    tokens = set(name_tokens(name.rsplit(".", 1)[-1] if "/" not in name else name.rstrip("/").rsplit("/", 1)[-1]))
    if "tta" in tokens:
        return None
    train, evaluation = bool(tokens & _TRAIN_TOKENS), bool(tokens & EVAL_TOKENS)
    if train == evaluation:
        return None
    return TRAIN_ROLE if train else EVAL_ROLE
