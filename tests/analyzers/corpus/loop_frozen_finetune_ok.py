"""Knowledge distillation into a small student, with an optional frozen feature extractor. Every
optimizer here holds parameters that train: the teacher is frozen but never optimized, the backbone is
frozen only under a flag, the classifier replaced after freezing VGG's features is created trainable, and
the partial freeze keeps the last block trainable."""

import argparse

import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision
from torch.utils.data import DataLoader
from torchvision import datasets, transforms


def distillation_loss(student_logits, teacher_logits, labels, temperature=4.0, alpha=0.9):
    soft = F.kl_div(
        F.log_softmax(student_logits / temperature, dim=1),
        F.softmax(teacher_logits / temperature, dim=1),
        reduction="batchmean",
    ) * temperature ** 2
    return alpha * soft + (1 - alpha) * F.cross_entropy(student_logits, labels)


def build_vgg(num_classes):
    vgg = torchvision.models.vgg16(weights="DEFAULT")
    for param in vgg.parameters():
        param.requires_grad = False
    vgg.classifier[6] = nn.Linear(4096, num_classes)
    optimizer = torch.optim.SGD(vgg.parameters(), lr=1e-3, momentum=0.9)
    return vgg, optimizer


def build_partially_frozen(num_classes):
    model = torchvision.models.resnet34(weights="DEFAULT")
    model.fc = nn.Linear(model.fc.in_features, num_classes)
    for name, param in model.named_parameters():
        if not name.startswith(("layer4.", "fc.")):
            param.requires_grad = False
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-2, momentum=0.9)
    return model, optimizer


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--freeze-backbone", action="store_true")
    parser.add_argument("--epochs", type=int, default=30)
    args = parser.parse_args()
    torch.manual_seed(0)

    normalize = transforms.Normalize((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616))
    train_set = datasets.CIFAR10("data", train=True, download=True,
                                 transform=transforms.Compose([transforms.ToTensor(), normalize]))
    train_loader = DataLoader(train_set, batch_size=128, shuffle=True, num_workers=4)

    teacher = torchvision.models.resnet50(num_classes=10)
    teacher.load_state_dict(torch.load("teacher.pt", map_location="cpu"))
    teacher.requires_grad_(False)
    teacher.eval()

    student = torchvision.models.resnet18(num_classes=10)
    if args.freeze_backbone:
        for param in student.parameters():
            param.requires_grad = False
        student.fc = nn.Linear(512, 10)
    optimizer = torch.optim.SGD(student.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)

    with torch.no_grad():
        student.fc.bias.zero_()

    for epoch in range(args.epochs):
        student.train()
        for images, labels in train_loader:
            with torch.no_grad():
                teacher_logits = teacher(images)
            loss = distillation_loss(student(images), teacher_logits, labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        print(f"epoch {epoch}: loss {loss.item():.4f}")


if __name__ == "__main__":
    main()
