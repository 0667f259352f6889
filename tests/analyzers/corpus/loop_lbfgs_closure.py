"""Neural style transfer / curve fitting with LBFGS: the closure clears, backpropagates and returns the
loss; optimizer.step(closure) drives it."""

import torch
import torch.nn as nn

torch.manual_seed(0)

x = torch.linspace(-3, 3, 200).unsqueeze(1)
y = torch.sin(x) + 0.1 * torch.randn_like(x)

model = nn.Sequential(nn.Linear(1, 64), nn.Tanh(), nn.Linear(64, 64), nn.Tanh(), nn.Linear(64, 1))
criterion = nn.MSELoss()
optimizer = torch.optim.LBFGS(model.parameters(), lr=1.0, max_iter=20, history_size=50, line_search_fn="strong_wolfe")

history = []
for step in range(50):

    def closure():
        optimizer.zero_grad()
        loss = criterion(model(x), y)
        loss.backward()
        return loss

    loss = optimizer.step(closure)
    history.append(loss.item())
    if step % 10 == 0:
        print(f"step {step}: {history[-1]:.5f}")


# the same with a closure defined once, outside the loop
input_img = torch.rand(1, 3, 64, 64, requires_grad=True)
image_optimizer = torch.optim.LBFGS([input_img])


def image_closure():
    with torch.no_grad():
        input_img.clamp_(0, 1)
    image_optimizer.zero_grad()
    loss = ((input_img - 0.5) ** 2).mean()
    loss.backward()
    return loss


for run in range(300):
    image_optimizer.step(image_closure)
