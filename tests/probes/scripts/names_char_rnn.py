"""A character-level name generator in the layout of makemore: every name is one row, the input starts with the
start token 0 and the target ends with it, the rest of the row is padded (inputs 0, targets -1, left out of the loss
with ignore_index=-1); a GRU reads the row (batch_first) and a linear head predicts the next of 27 characters."""

import argparse

import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, Dataset

parser = argparse.ArgumentParser()
parser.add_argument("--batch-size", type=int, default=32)
parser.add_argument("--max-steps", type=int, default=200)
args = parser.parse_args()

NAMES = """emma olivia ava isabella sophia charlotte mia amelia harper evelyn abigail emily elizabeth mila ella avery
sofia camila aria scarlett victoria madison luna grace chloe penelope layla riley zoey nora lily eleanor hannah lillian
addison aubrey ellie stella natalie zoe leah hazel violet aurora savannah audrey brooklyn bella claire skylar lucy
paisley everly anna caroline nova genesis emilia kennedy samantha maya willow kinsley naomi aaliyah elena sarah ariana
allison gabriella alice madelyn cora ruby eva serenity autumn adeline hailey gianna valentina isla eliana quinn nevaeh
ivy sadie piper lydia alexa josephine emery julia delilah arianna vivian kaylee sophie brielle madeline liam noah
william james oliver benjamin elijah lucas mason logan alexander ethan jacob michael daniel henry jackson sebastian
aiden matthew samuel david joseph carter owen wyatt john jack luke jayden dylan grayson levi isaac gabriel julian mateo
anthony jaxon lincoln joshua christopher andrew theodore caleb ryan asher nathan thomas leo isaiah charles josiah hudson
christian hunter connor eli ezra aaron landon adrian jonathan nolan jeremiah easton elias colton cameron carson robert
angel maverick nicholas dominic jaxson greyson adam ian austin santiago jordan cooper brayden roman evan ezekiel xavier
jose jace jameson leonardo bryson axel everett parker kayden miles sawyer jason""".split()
chars = sorted(set("".join(NAMES)))
stoi = {c: i + 1 for i, c in enumerate(chars)}  # 0 is the start / end token
vocab = len(chars) + 1
max_len = max(len(w) for w in NAMES) + 1


class Names(Dataset):
    def __len__(self):
        return len(NAMES)

    def __getitem__(self, i):
        ix = torch.tensor([stoi[c] for c in NAMES[i]], dtype=torch.long)
        x = torch.zeros(max_len, dtype=torch.long)
        y = torch.full((max_len,), -1, dtype=torch.long)
        x[1:1 + len(ix)] = ix
        y[:len(ix)] = ix
        y[len(ix)] = 0
        return x, y


class CharRNN(nn.Module):
    def __init__(self, vocab, n_embd=32, n_hidden=64):
        super().__init__()
        self.wte = nn.Embedding(vocab, n_embd)
        self.rnn = nn.GRU(n_embd, n_hidden, batch_first=True)
        self.lm_head = nn.Linear(n_hidden, vocab)

    def forward(self, idx, targets=None):
        out, _ = self.rnn(self.wte(idx))
        logits = self.lm_head(out)
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1), ignore_index=-1)
        return logits, loss


torch.manual_seed(3407)
model = CharRNN(vocab)
optimizer = torch.optim.AdamW(model.parameters(), lr=5e-3, weight_decay=0.01, betas=(0.9, 0.99), eps=1e-8)
loader = DataLoader(Names(), batch_size=args.batch_size, shuffle=True)
step = 0
while step < args.max_steps:
    for x, y in loader:
        logits, loss = model(x, y)
        model.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        step += 1
        if step % 50 == 0:
            print(f"step {step} | loss {loss.item():.4f}")
