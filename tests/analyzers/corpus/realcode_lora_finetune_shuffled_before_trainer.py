"""Instruction fine-tuning with LoRA and the Hugging Face ``Trainer``. The Trainer seeds every generator from
``TrainingArguments.seed`` (42 by default) when it is built, and the validation split passes ``seed=42``: the author
wants repeatable runs. But the split halves are shuffled again with ``.shuffle()`` and no seed *before* the Trainer
exists, from NumPy's unseeded global state: the training order differs on every run. The noise drawn after the
Trainer is built is seeded (nothing to report there).

Pattern seen in a public fine-tuning repository (recorded in the real-code manifest); this script is written for
the corpus.
"""

import fire
import numpy as np
import transformers
from datasets import load_dataset
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM, AutoTokenizer


def train(base_model: str = "", data_path: str = "instructions.json", output_dir: str = "./lora-out",
          val_set_size: int = 2000, micro_batch_size: int = 4, num_epochs: int = 3):
    tokenizer = AutoTokenizer.from_pretrained(base_model)
    model = AutoModelForCausalLM.from_pretrained(base_model)
    model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, lora_dropout=0.05, task_type="CAUSAL_LM"))

    def tokenize(example):
        return tokenizer(example["instruction"] + example["output"], truncation=True, max_length=256)

    if data_path.endswith(".json"):
        data = load_dataset("json", data_files=data_path)
    else:
        data = load_dataset(data_path)  # a dataset of the Hub
    if val_set_size > 0:
        parts = data["train"].train_test_split(test_size=val_set_size, shuffle=True, seed=42)
        train_data = parts["train"].shuffle().map(tokenize)  # expect: SAN402
        val_data = parts["test"].shuffle().map(tokenize)
    else:
        train_data = data["train"].shuffle().map(tokenize)
        val_data = None

    trainer = transformers.Trainer(
        model=model,
        train_dataset=train_data,
        eval_dataset=val_data,
        args=transformers.TrainingArguments(
            per_device_train_batch_size=micro_batch_size,
            num_train_epochs=num_epochs,
            learning_rate=3e-4,
            output_dir=output_dir,
        ),
        data_collator=transformers.DataCollatorForSeq2Seq(tokenizer, pad_to_multiple_of=8, return_tensors="pt"),
    )
    jitter = np.random.uniform(0.0, 1.0)
    print(f"warm-up jitter {jitter:.3f}")
    trainer.train()
    model.save_pretrained(output_dir)


if __name__ == "__main__":
    fire.Fire(train)
