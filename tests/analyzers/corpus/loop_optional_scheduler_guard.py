"""A reusable fit() whose scheduler is optional: `if scheduler:` only checks that one was passed, so a
scheduler stepped at the top of the epoch is still stepped before the optimizer; likewise a configuration
switch that no iteration changes (annotated)."""

import argparse

import torch
import torch.nn as nn


def fit(model, loader, optimizer, scheduler=None, epochs=30):
    criterion = nn.CrossEntropyLoss()
    for epoch in range(epochs):
        if scheduler is not None:
            scheduler.step()  # expect: SAN503
        model.train()
        for images, targets in loader:
            optimizer.zero_grad()
            loss = criterion(model(images), targets)
            loss.backward()
            optimizer.step()


def fit_late_schedule(model, loader, optimizer, scheduler=None, epochs=30):
    criterion = nn.CrossEntropyLoss()
    for epoch in range(epochs):
        model.train()
        for images, targets in loader:
            optimizer.zero_grad()
            loss = criterion(model(images), targets)
            loss.backward()
            optimizer.step()
        if scheduler:
            scheduler.step()


def fit_warm_start(model, loader, optimizer, scheduler=None, epochs=30):
    criterion = nn.CrossEntropyLoss()
    for epoch in range(epochs):
        if epoch > 0 and scheduler is not None:
            scheduler.step()
        model.train()
        for images, targets in loader:
            optimizer.zero_grad()
            loss = criterion(model(images), targets)
            loss.backward()
            optimizer.step()


def train_one_epoch(model, loader, optimizer, criterion):
    model.train()
    for images, targets in loader:
        optimizer.zero_grad()
        criterion(model(images), targets).backward()
        optimizer.step()


def fit_configured(model, loader, optimizer, scheduler, config, epochs=30):
    criterion = nn.CrossEntropyLoss()
    for epoch in range(epochs):
        if not config.no_train:
            if config.lr_schedule == "multistep":
                scheduler.step()  # expect: SAN503
            train_one_epoch(model, loader, optimizer, criterion)


def fit_restarts(model, loader, optimizer, scheduler, epochs=30):
    criterion = nn.CrossEntropyLoss()
    phase = "warmup"
    for epoch in range(epochs):
        if phase == "decay":
            scheduler.step()
        train_one_epoch(model, loader, optimizer, criterion)
        phase = "decay" if epoch >= 5 else "warmup"


def step_after_warmup(scheduler, epoch, warmup=5):
    if epoch >= warmup:
        scheduler.step()


def fit_with_warmup_helper(model, loader, optimizer, scheduler, epochs=30):
    criterion = nn.CrossEntropyLoss()
    for epoch in range(epochs):
        step_after_warmup(scheduler, epoch)
        train_one_epoch(model, loader, optimizer, criterion)


def main(model, loader):
    torch.manual_seed(3)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=10)
    fit(model, loader, optimizer, scheduler)
    fit_late_schedule(model, loader, optimizer, scheduler)
    fit_warm_start(model, loader, optimizer, scheduler)
    fit_configured(model, loader, optimizer, scheduler, config=argparse.Namespace(no_train=False, lr_schedule="step"))
    fit_restarts(model, loader, optimizer, scheduler)
    fit_with_warmup_helper(model, loader, optimizer, scheduler)
