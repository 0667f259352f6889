"""Fine-tuning with accelerate: accelerator.backward, accelerator.accumulate, a warm-up schedule
stepped per batch, evaluation in eval mode under no_grad."""

import math

import torch
from accelerate import Accelerator
from accelerate.utils import set_seed
from datasets import load_dataset
from torch.utils.data import DataLoader
from transformers import AutoModelForSequenceClassification, AutoTokenizer, get_linear_schedule_with_warmup


def get_dataloaders(tokenizer, batch_size=16):
    raw = load_dataset("glue", "mrpc")

    def tokenize(examples):
        return tokenizer(examples["sentence1"], examples["sentence2"], truncation=True, max_length=128)

    tokenized = raw.map(tokenize, batched=True, remove_columns=["idx", "sentence1", "sentence2"])
    tokenized = tokenized.rename_column("label", "labels")

    def collate(examples):
        return tokenizer.pad(examples, padding="longest", return_tensors="pt")

    train_dataloader = DataLoader(tokenized["train"], shuffle=True, collate_fn=collate, batch_size=batch_size)
    eval_dataloader = DataLoader(tokenized["validation"], shuffle=False, collate_fn=collate, batch_size=32)
    return train_dataloader, eval_dataloader


def training_function(config):
    accelerator = Accelerator(gradient_accumulation_steps=config["grad_accum"], mixed_precision="bf16")
    set_seed(config["seed"])
    tokenizer = AutoTokenizer.from_pretrained("bert-base-cased")
    train_dataloader, eval_dataloader = get_dataloaders(tokenizer, config["batch_size"])
    model = AutoModelForSequenceClassification.from_pretrained("bert-base-cased", num_labels=2)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config["lr"], weight_decay=0.01)
    num_epochs = config["num_epochs"]
    steps_per_epoch = math.ceil(len(train_dataloader) / config["grad_accum"])
    lr_scheduler = get_linear_schedule_with_warmup(
        optimizer, num_warmup_steps=100, num_training_steps=num_epochs * steps_per_epoch
    )
    model, optimizer, train_dataloader, eval_dataloader, lr_scheduler = accelerator.prepare(
        model, optimizer, train_dataloader, eval_dataloader, lr_scheduler
    )

    for epoch in range(num_epochs):
        model.train()
        total_loss = 0.0
        for step, batch in enumerate(train_dataloader):
            with accelerator.accumulate(model):
                outputs = model(**batch)
                loss = outputs.loss
                total_loss += loss.detach().float()
                accelerator.backward(loss)
                if accelerator.sync_gradients:
                    accelerator.clip_grad_norm_(model.parameters(), 1.0)
                optimizer.step()
                lr_scheduler.step()
                optimizer.zero_grad()

        model.eval()
        correct, seen = 0, 0
        for step, batch in enumerate(eval_dataloader):
            with torch.no_grad():
                outputs = model(**batch)
            predictions = outputs.logits.argmax(dim=-1)
            predictions, references = accelerator.gather_for_metrics((predictions, batch["labels"]))
            correct += (predictions == references).sum().item()
            seen += references.numel()
        accelerator.print(f"epoch {epoch}: loss {total_loss.item() / len(train_dataloader):.4f} acc {correct / seen:.4f}")

    accelerator.wait_for_everyone()
    accelerator.save_model(model, "output")


if __name__ == "__main__":
    training_function({"lr": 2e-5, "num_epochs": 3, "seed": 42, "batch_size": 16, "grad_accum": 4})
