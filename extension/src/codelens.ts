/**
 * Where the "Run Sanity Probe" CodeLens goes: above the `if __name__ == "__main__":` block, or — in a script
 * without one — above the outermost training loop (a `for`/`while` whose body calls `backward()` or `.step()`).
 * A line scanner, not a parser: the client stays thin, and a lens in a slightly wrong place costs nothing.
 */

export interface EntryPoint {
  /** 0-based line. */
  line: number;
  kind: "main-guard" | "training-loop";
}

const MAIN_GUARD =
  /^if\s+(?:\(?\s*__name__\s*==\s*(['"])__main__\1\s*\)?|\(?\s*(['"])__main__\2\s*==\s*__name__\s*\)?)\s*:/;
const LOOP = /^(?:async\s+)?(?:for|while)\b/;
const TRAINING_CALL = /\.\s*backward\s*\(|\bbackward\s*\(|\.\s*step\s*\(\s*\)|\.\s*step\s*\(\s*closure/;

interface Line {
  index: number;
  indent: number;
  text: string; // stripped of leading whitespace and trailing comment-ish noise
}

/** Logical, non-blank lines outside triple-quoted strings, with their indentation. */
function codeLines(text: string): Line[] {
  const out: Line[] = [];
  const raw = text.split(/\r?\n/);
  let inString: string | undefined;
  for (let i = 0; i < raw.length; i++) {
    const line = raw[i];
    let scan = line;
    if (inString) {
      const end = scan.indexOf(inString);
      if (end < 0) continue;
      scan = scan.slice(end + 3);
      inString = undefined;
      if (!scan.trim()) continue;
      // code after a closing quote on the same line is rare; treat the line as a continuation
      continue;
    }
    const stripped = line.trimStart();
    if (!stripped || stripped.startsWith("#")) continue;
    // opening triple quote without a matching close on this line → skip until it closes
    const m = /("""|''')/.exec(stripped);
    if (m) {
      const rest = stripped.slice(m.index + 3);
      if (!rest.includes(m[1])) inString = m[1];
    }
    const indent = line.length - stripped.length;
    out.push({ index: i, indent: expandTabs(line.slice(0, indent)), text: stripped });
  }
  return out;
}

function expandTabs(ws: string): number {
  let n = 0;
  for (const ch of ws) n = ch === "\t" ? n + 8 - (n % 8) : n + 1;
  return n;
}

export function findEntryPoints(text: string): EntryPoint[] {
  const lines = codeLines(text);
  const guards = lines.filter((l) => l.indent === 0 && MAIN_GUARD.test(l.text));
  if (guards.length) return [{ line: guards[0].index, kind: "main-guard" }];

  const loops: EntryPoint[] = [];
  let coveredUntil = -1; // index in `lines` up to which we are inside an already chosen loop
  for (let k = 0; k < lines.length; k++) {
    if (k <= coveredUntil) continue;
    const head = lines[k];
    if (!LOOP.test(head.text)) continue;
    let end = k;
    let trains = TRAINING_CALL.test(head.text.replace(/^[^:]*:/, ""));
    for (let j = k + 1; j < lines.length && lines[j].indent > head.indent; j++) {
      end = j;
      if (TRAINING_CALL.test(lines[j].text)) trains = true;
    }
    if (trains) {
      loops.push({ line: head.index, kind: "training-loop" });
      coveredUntil = end;
    }
  }
  return loops.slice(0, 1);
}
