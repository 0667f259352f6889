"""Windows line endings and no newline at the end of the file."""
import torch
import torch.nn.functional as F

model = torch.nn.Linear(4, 2)
opt = torch.optim.SGD(model.parameters(), lr=0.1)
batches = [(torch.randn(3, 4), torch.tensor([0, 1, 1])) for _ in range(5)]

for step, (x, y) in enumerate(batches):
    logits = model(x)
    loss = F.cross_entropy(F.softmax(logits, dim=-1), y)
    loss.backward()
    if step % 4 == 0:
        opt.step()
        opt.zero_grad()
    h = x.transpose(0, 1).view(-1)