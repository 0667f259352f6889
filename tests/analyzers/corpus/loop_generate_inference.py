"""Instruction-tuned model inference: Hugging Face's `model.generate(...)` runs under `torch.no_grad()` itself,
so a generation helper needs no `with torch.no_grad()` (SAN202 stays silent); a hand-written forward does."""

import sys

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

tokenizer = AutoTokenizer.from_pretrained("some-org/small-llm")
model = AutoModelForCausalLM.from_pretrained("some-org/small-llm", torch_dtype=torch.float16)
model.eval()


def build_prompt(instruction, context=None):
    if context:
        return f"### Instruction:\n{instruction}\n\n### Input:\n{context}\n\n### Response:\n"
    return f"### Instruction:\n{instruction}\n\n### Response:\n"


def evaluate(instruction, context=None, temperature=0.1, num_beams=4):
    inputs = tokenizer(build_prompt(instruction, context), return_tensors="pt")
    config = GenerationConfig(temperature=temperature, num_beams=num_beams)
    output = model.generate(input_ids=inputs["input_ids"], generation_config=config, max_new_tokens=256)
    return tokenizer.decode(output[0], skip_special_tokens=True)


def evaluate_without_graph(instruction, context=None, temperature=0.1, num_beams=4):
    inputs = tokenizer(build_prompt(instruction, context), return_tensors="pt")
    config = GenerationConfig(temperature=temperature, num_beams=num_beams)
    with torch.no_grad():
        output = model.generate(input_ids=inputs["input_ids"], generation_config=config, max_new_tokens=256)
    return tokenizer.decode(output[0], skip_special_tokens=True)


def predict_confidence(instruction, context=None):  # expect: SAN202
    inputs = tokenizer(build_prompt(instruction, context), return_tensors="pt")
    logits = model(input_ids=inputs["input_ids"]).logits
    return logits[0, -1].softmax(-1).max().item()


if __name__ == "__main__":
    for line in sys.stdin:
        print(evaluate(line.strip()))
        print(evaluate_without_graph(line.strip()))
        print(predict_confidence(line.strip()))
