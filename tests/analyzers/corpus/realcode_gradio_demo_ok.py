"""A digit recogniser served with gradio, as ``realcode_gradio_demo_dropout.py``, done right: the model is switched
to eval mode once it is loaded, before ``predict()`` is handed to ``gr.Interface`` — every call the UI makes
runs it without dropout. Nothing to report.

Written for the corpus.
"""

import gradio as gr
import torch
import torch.nn as nn


class DigitNet(nn.Module):
    def __init__(self, hidden=256):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(16 * 14 * 14, hidden), nn.ReLU(), nn.Dropout(0.5),
                                  nn.Linear(hidden, 10))

    def forward(self, x):
        return self.head(self.features(x))


model = DigitNet()
model.load_state_dict(torch.load("digits.pt", map_location="cpu"))
model.eval()


def predict(image):
    x = torch.tensor(image, dtype=torch.float32).reshape(1, 1, 28, 28) / 255.0
    with torch.no_grad():
        probs = model(x).softmax(-1)[0]
    return {str(digit): float(p) for digit, p in enumerate(probs)}


demo = gr.Interface(fn=predict, inputs="sketchpad", outputs=gr.Label(num_top_classes=3), title="Digits")

if __name__ == "__main__":
    demo.launch()
