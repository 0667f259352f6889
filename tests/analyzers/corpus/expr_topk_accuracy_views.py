"""Top-k accuracy helpers in the style of many ImageNet training scripts: the comparison of a transposed
prediction matrix keeps its transposed layout, so flattening a slice of it with view(-1) fails as soon as
k > 1 (torch >= 1.7 raises). Annotated."""

import torch


def topk_accuracy(output, target, topk=(1, 5)):
    with torch.no_grad():
        maxk = max(topk)
        batch_size = target.size(0)
        _, pred = output.topk(maxk, 1, True, True)
        pred = pred.t()
        correct = pred.eq(target.view(1, -1).expand_as(pred))
        scores = []
        for k in topk:
            hits = correct[:k].view(-1).float().sum(0, keepdim=True)  # expect: SAN302
            scores.append(hits.mul_(100.0 / batch_size))
        return scores


def topk_accuracy_fixed(output, target, topk=(1, 5)):
    with torch.no_grad():
        _, pred = output.topk(max(topk), dim=1)
        pred = pred.t()
        correct = pred.eq(target.view(1, -1).expand_as(pred))
        return [correct[:k].reshape(-1).float().mean() * 100.0 for k in topk]


def first_choice_hits(output, target):
    ranked = output.argsort(dim=1, descending=True).t()
    best = ranked[0]
    return best.view(-1).eq(target).sum().item()


def per_class_counts(confusion):
    columns = confusion.t().contiguous()
    return columns.view(-1)


def queue_logits(query, queue, temperature=0.07):
    """MoCo-style negatives: the transposed queue is viewed with its own shape, which merges nothing."""
    batch, negatives = query.shape[0], queue.shape[0]
    positives = torch.bmm(query.view(batch, 1, -1), query.view(batch, -1, 1)).view(batch, 1)
    against_queue = torch.mm(query.view(batch, -1), queue.T.view(-1, negatives))
    by_column = queue.t().view(queue.size(1), -1)
    regrouped = queue.T.view(negatives, -1)  # expect: SAN302
    return torch.cat([positives, against_queue], dim=1) / temperature, by_column, regrouped
