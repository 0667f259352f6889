"""Gradient accumulation whose loss is divided by the wrong count: a fine-tuning script that grew two flags
for one setting (the loss divided by `--grad-accum`, the optimizer stepping on `--accumulation-steps`), a
classifier whose hard-coded divisor no longer matches its step, and the legitimate normalisations next to
them (per-token, per-sample, an average of two losses, one count under two names) that stay silent."""

import argparse
import random

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader
from torchvision import datasets, models, transforms
from transformers import AutoModelForCausalLM, AutoTokenizer, DataCollatorForLanguageModeling

ACCUM_STEPS = 4


def seed_everything(seed):
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def finetune_lm(args, model, loader, optimizer, scaler):
    model.train()
    optimizer.zero_grad(set_to_none=True)
    for step, batch in enumerate(loader):
        with torch.autocast("cuda", dtype=torch.bfloat16):
            outputs = model(**batch)
            loss = outputs.loss / args.grad_accum  # expect: SAN105
        scaler.scale(loss).backward()
        if (step + 1) % args.accumulation_steps == 0:
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(model.parameters(), args.max_grad_norm)
            scaler.step(optimizer)
            scaler.update()
            optimizer.zero_grad(set_to_none=True)


def finetune_lm_per_token(args, model, loader, optimizer):
    """Twin: the summed token loss is divided by the tokens in the batch, then by the accumulation count."""
    model.train()
    optimizer.zero_grad()
    for step, batch in enumerate(loader):
        logits = model(input_ids=batch["input_ids"]).logits
        targets = batch["labels"][:, 1:]
        loss = F.cross_entropy(logits[:, :-1].flatten(0, 1), targets.flatten(), reduction="sum", ignore_index=-100)
        loss = loss / (targets != -100).sum()
        loss = loss / args.accumulation_steps
        loss.backward()
        if (step + 1) % args.accumulation_steps == 0:
            optimizer.step()
            optimizer.zero_grad()


def train_classifier(model, loader, optimizer, criterion):
    model.train()
    optimizer.zero_grad()
    for i, (images, labels) in enumerate(loader):
        loss = criterion(model(images), labels) / 8  # expect: SAN105
        loss.backward()
        if (i + 1) % ACCUM_STEPS == 0:
            optimizer.step()
            optimizer.zero_grad()


def train_classifier_per_sample(model, loader, optimizer, batch_size):
    """Twin: a summed loss divided by the batch size, with a constant accumulation count."""
    model.train()
    optimizer.zero_grad()
    criterion = nn.CrossEntropyLoss(reduction="sum")
    for i, (images, labels) in enumerate(loader):
        loss = criterion(model(images), labels)
        loss = loss / batch_size
        loss.backward()
        if (i + 1) % ACCUM_STEPS == 0:
            optimizer.step()
            optimizer.zero_grad()


def train_two_heads(model, aux_head, loader, optimizer, criterion):
    """Twin: two losses averaged; the average is the loss of one micro-batch."""
    model.train()
    optimizer.zero_grad()
    for i, (images, labels) in enumerate(loader):
        features = model(images)
        loss = (criterion(features, labels) + criterion(aux_head(features), labels)) / 2
        (loss / ACCUM_STEPS).backward()
        if (i + 1) % ACCUM_STEPS == 0:
            optimizer.step()
            optimizer.zero_grad()


def train_counted(model, loader, optimizer, criterion, args):
    """Twin: a counter gate, and the count under a second name."""
    accumulate_every = args.accumulation_steps
    model.train()
    optimizer.zero_grad()
    seen = 0
    for images, labels in loader:
        loss = criterion(model(images), labels)
        loss /= args.accumulation_steps
        loss.backward()
        seen += 1
        if seen >= accumulate_every:
            optimizer.step()
            optimizer.zero_grad()
            seen = 0


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="gpt2")
    parser.add_argument("--lr", type=float, default=5e-5)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--grad-accum", type=int, default=4)
    parser.add_argument("--accumulation-steps", type=int, default=8)
    parser.add_argument("--max-grad-norm", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    seed_everything(args.seed)

    tokenizer = AutoTokenizer.from_pretrained(args.model)
    tokenizer.pad_token = tokenizer.eos_token
    lm = AutoModelForCausalLM.from_pretrained(args.model)
    texts = [line for line in open("train.txt", encoding="utf-8").read().splitlines() if line]
    encoded = [tokenizer(text, truncation=True, max_length=256) for text in texts]
    collator = DataCollatorForLanguageModeling(tokenizer, mlm=False)
    lm_loader = DataLoader(encoded, batch_size=args.batch_size, shuffle=True, collate_fn=collator)
    lm_optimizer = torch.optim.AdamW(lm.parameters(), lr=args.lr)
    finetune_lm(args, lm, lm_loader, lm_optimizer, torch.cuda.amp.GradScaler())
    finetune_lm_per_token(args, lm, lm_loader, lm_optimizer)

    transform = transforms.Compose([transforms.RandomCrop(32, padding=4), transforms.ToTensor()])
    train_set = datasets.CIFAR10("data", train=True, download=True, transform=transform)
    image_loader = DataLoader(train_set, batch_size=args.batch_size, shuffle=True)
    net = models.resnet18(num_classes=10)
    aux_head = nn.Linear(10, 10)
    optimizer = torch.optim.SGD(list(net.parameters()) + list(aux_head.parameters()), lr=0.1, momentum=0.9)
    criterion = nn.CrossEntropyLoss()
    train_classifier(net, image_loader, optimizer, criterion)
    train_classifier_per_sample(net, image_loader, optimizer, args.batch_size)
    train_two_heads(net, aux_head, image_loader, optimizer, criterion)
    train_counted(net, image_loader, optimizer, criterion, args)


if __name__ == "__main__":
    main()
