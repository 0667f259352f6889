"""A sentiment demo served from a Hugging Face checkpoint: the classifier and a PEFT adapter are loaded with
``from_pretrained``, which returns them in eval mode (transformers' ``PreTrainedModel`` and peft's
``PeftModel`` for an adapter loaded for inference, the default), and nothing here trains or calls ``train()``;
``predict()`` and ``evaluate()`` run them without calling ``eval()`` themselves, which is fine. Handed to a web
UI or called from the command line, the mode is the one ``from_pretrained`` left.

Pattern seen in public inference scripts and demos (a generation or classification helper over a module-level
model loaded from the Hub); this script is written for the corpus.
"""

import sys

import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

tokenizer = AutoTokenizer.from_pretrained("example-org/sentiment-base")
classifier = AutoModelForSequenceClassification.from_pretrained("example-org/sentiment-base")
classifier = classifier.to("cuda" if torch.cuda.is_available() else "cpu")

generator = AutoModelForCausalLM.from_pretrained("example-org/base-7b", torch_dtype=torch.float16)
generator = PeftModel.from_pretrained(generator, "example-org/explain-lora")


def predict(text):
    inputs = tokenizer(text, return_tensors="pt").to(classifier.device)
    with torch.no_grad():
        logits = classifier(**inputs).logits
    return logits.softmax(-1)[0].tolist()


def evaluate(text):
    prompt = f"Explain the sentiment of: {text}\n"
    inputs = tokenizer(prompt, return_tensors="pt")
    output = generator.generate(input_ids=inputs["input_ids"], max_new_tokens=64)
    return tokenizer.decode(output[0], skip_special_tokens=True)


if __name__ == "__main__":
    for line in sys.stdin:
        print(predict(line.strip()), evaluate(line.strip()))
