"""Instruction-following demo for a LoRA-tuned causal language model: the base model is loaded in half
precision, the adapter is attached with PEFT to be trained further (``is_trainable=True``), and ``evaluate()``
generates an answer. It disables autograd but never switches the adapter's dropout off: the base model comes
back from ``from_pretrained`` in eval mode, a trainable adapter does not (peft leaves it in training mode; it
puts a model whose adapter is loaded for inference, the default, in eval mode — and so does transformers'
``from_pretrained``, which ``realcode_hf_pipeline_ok.py`` relies on).

Pattern seen in public fine-tuning repositories (a generate script whose ``model.eval()`` was added, lost in
a refactor and put back; with the peft of the time the adapter stayed in training mode); this script is
written for the corpus.
"""

import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

BASE = "example-org/base-7b"
ADAPTER = "example-org/instruct-lora"

tokenizer = AutoTokenizer.from_pretrained(BASE)
model = AutoModelForCausalLM.from_pretrained(BASE, torch_dtype=torch.float16)
model = PeftModel.from_pretrained(model, ADAPTER, is_trainable=True)


def build_prompt(instruction, context=None):
    if context:
        return f"### Instruction:\n{instruction}\n\n### Input:\n{context}\n\n### Response:\n"
    return f"### Instruction:\n{instruction}\n\n### Response:\n"


def evaluate(instruction, context=None, temperature=0.2, num_beams=2):  # expect: SAN201
    inputs = tokenizer(build_prompt(instruction, context), return_tensors="pt")
    config = GenerationConfig(temperature=temperature, top_p=0.9, num_beams=num_beams)
    with torch.no_grad():
        output = model.generate(
            input_ids=inputs["input_ids"],
            generation_config=config,
            max_new_tokens=128,
        )
    text = tokenizer.decode(output[0], skip_special_tokens=True)
    return text.split("### Response:")[-1].strip()


if __name__ == "__main__":
    for question in ["Name three primary colours.", "What is the capital of France?"]:
        print(question, "->", evaluate(question))
