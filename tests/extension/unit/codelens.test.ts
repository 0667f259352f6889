import assert from "node:assert/strict";
import { test } from "node:test";
import { findEntryPoints } from "../../../extension/src/codelens";

test("the lens goes on the main guard when there is one", () => {
  const src = [
    "import torch",
    "def train():",
    "    for x, y in loader:",
    "        loss.backward()",
    "",
    'if __name__ == "__main__":',
    "    train()",
  ].join("\n");
  assert.deepEqual(findEntryPoints(src), [{ line: 5, kind: "main-guard" }]);
});

test("main guard variants: single quotes, reversed, parenthesised; indented ones ignored", () => {
  assert.equal(findEntryPoints("if __name__=='__main__':\n  main()")[0].line, 0);
  assert.equal(findEntryPoints("x = 1\nif '__main__' == __name__ :\n  main()")[0].line, 1);
  assert.equal(findEntryPoints('if (__name__ == "__main__"):\n  main()')[0].line, 0);
  assert.deepEqual(findEntryPoints('def f():\n    if __name__ == "__main__":\n        pass'), []);
});

test("without a main guard: the outermost loop that trains", () => {
  const src = [
    "model = Net()",
    "for i in range(3):", // not training
    "    print(i)",
    "for epoch in range(10):", // line 3: outermost training loop
    "    for xb, yb in loader:",
    "        opt.zero_grad()",
    "        loss = crit(model(xb), yb)",
    "        loss.backward()",
    "        opt.step()",
    "for epoch in range(2):", // a second training loop: only the first gets the lens
    "    loss.backward()",
  ].join("\n");
  assert.deepEqual(findEntryPoints(src), [{ line: 3, kind: "training-loop" }]);
});

test("training loop inside a function, while loops, and step-only loops", () => {
  const src = ["def train(model):", "    while True:", "        optimizer.step()", "        break"].join("\n");
  assert.deepEqual(findEntryPoints(src), [{ line: 1, kind: "training-loop" }]);
});

test("code inside docstrings and comments does not count", () => {
  const src = [
    '"""Example:',
    'if __name__ == "__main__":',
    "    for b in data: loss.backward()",
    '"""',
    "# for x in y: loss.backward()",
    "x = 1",
  ].join("\n");
  assert.deepEqual(findEntryPoints(src), []);
});

test("CRLF line endings and tabs", () => {
  const src = "import torch\r\nfor b in data:\r\n\tloss.backward()\r\n";
  assert.deepEqual(findEntryPoints(src), [{ line: 1, kind: "training-loop" }]);
});
