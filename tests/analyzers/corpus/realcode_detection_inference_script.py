"""An object-detection demo script: it loads a trained checkpoint, puts the model in eval mode at the top of the
module, and ``detect()`` runs it on one image and draws the boxes. Nothing here trains, but ``detect()`` runs the
network with autograd on: every call records a graph that nobody backpropagates through. ``describe()`` is
decorated with ``@torch.no_grad()`` and is fine.

Pattern seen in a public object-detection tutorial (recorded in the real-code manifest); this script is written
for the corpus.
"""

import torch
from PIL import Image, ImageDraw
from torchvision import transforms

device = torch.device("cuda" if torch.cuda.is_available() else "cpu")

checkpoint = torch.load("checkpoint_ssd300.pth.tar", map_location=device)
model = checkpoint["model"].to(device)
model.eval()

resize = transforms.Resize((300, 300))
to_tensor = transforms.ToTensor()
normalize = transforms.Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])


def detect(original_image, min_score=0.2, max_overlap=0.5, top_k=200):  # expect: SAN202
    image = normalize(to_tensor(resize(original_image))).to(device)
    predicted_locs, predicted_scores = model(image.unsqueeze(0))
    boxes, labels, scores = model.detect_objects(predicted_locs, predicted_scores, min_score=min_score,
                                                 max_overlap=max_overlap, top_k=top_k)
    dims = torch.tensor([original_image.width, original_image.height] * 2, dtype=torch.float).unsqueeze(0)
    boxes = boxes[0].cpu() * dims
    annotated = original_image.copy()
    draw = ImageDraw.Draw(annotated)
    for box in boxes.tolist():
        draw.rectangle(box, outline="#e6194b")
    return annotated


@torch.no_grad()
def describe(original_image):
    image = normalize(to_tensor(resize(original_image))).to(device)
    _, scores = model(image.unsqueeze(0))
    return scores.softmax(-1).amax(-1).mean().item()


if __name__ == "__main__":
    picture = Image.open("street.jpg").convert("RGB")
    detect(picture).show()
    print(describe(picture))
