/**
 * Which Python runs the language server and the probe. Pure logic: the vscode-facing parts are injected, so the
 * resolution order is unit-tested without VS Code.
 *
 * Order: the machine-scoped `torchsanity.interpreter` setting, then the Python extension's active interpreter
 * (optional extension; never in an untrusted workspace, where the workspace could have chosen it), then `python3`
 * on PATH (`python` on Windows).
 */
import * as os from "os";
import * as path from "path";

export type InterpreterSource = "setting" | "python-extension" | "path";

export interface ResolvedInterpreter {
  path: string;
  source: InterpreterSource;
  /** Something the user should hear about (once): why this interpreter was chosen. */
  note?: string;
}

export interface InterpreterInputs {
  /** Value of the (machine-scoped) `torchsanity.interpreter` setting. */
  setting: string | undefined;
  trusted: boolean;
  /** Whether the Python extension (ms-python.python) is installed. */
  pythonExtensionInstalled: boolean;
  /** Asks the Python extension for its active interpreter's executable; may throw or return undefined. */
  pythonExtensionInterpreter: () => Promise<string | undefined>;
  /** Finds an executable on PATH. */
  which: (name: string) => string | undefined;
  platform?: NodeJS.Platform;
  env?: NodeJS.ProcessEnv;
  homedir?: string;
}

export class NoInterpreterError extends Error {}

/** Expands `~`, `${userHome}` and `${env:NAME}` in a user-written interpreter path. */
export function expandPath(value: string, env: NodeJS.ProcessEnv = process.env, home: string = os.homedir()): string {
  let out = value.trim();
  out = out.replace(/\$\{userHome\}/g, home);
  out = out.replace(/\$\{env:([A-Za-z_][A-Za-z0-9_]*)\}/g, (_m, name: string) => env[name] ?? "");
  if (out === "~" || out.startsWith("~/")) {
    out = path.join(home, out.slice(1));
  }
  return out;
}

export async function resolveInterpreter(inputs: InterpreterInputs): Promise<ResolvedInterpreter> {
  const platform = inputs.platform ?? process.platform;
  const setting = (inputs.setting ?? "").trim();
  if (setting) {
    return { path: expandPath(setting, inputs.env, inputs.homedir), source: "setting" };
  }
  let note: string | undefined;
  if (inputs.pythonExtensionInstalled && inputs.trusted) {
    try {
      const fromExt = await inputs.pythonExtensionInterpreter();
      if (fromExt) {
        return { path: fromExt, source: "python-extension" };
      }
      note = "The Python extension has no interpreter selected";
    } catch (err) {
      note = `The Python extension did not answer (${err instanceof Error ? err.message : String(err)})`;
    }
  } else if (inputs.pythonExtensionInstalled && !inputs.trusted) {
    note = "In Restricted Mode the Python extension's interpreter is not used (the workspace may have chosen it)";
  } else {
    note = "The Python extension is not installed";
  }
  const names = platform === "win32" ? ["python", "py"] : ["python3", "python"];
  for (const name of names) {
    const found = inputs.which(name);
    if (found) {
      return {
        path: found,
        source: "path",
        note: `${note}; using ${name} on PATH (${found}). Set torchsanity.interpreter to choose another.`,
      };
    }
  }
  throw new NoInterpreterError(
    `${note}, and no ${names[0]} was found on PATH. Set torchsanity.interpreter to a Python 3.10–3.13 interpreter.`,
  );
}

/** A tiny `which`: the first executable file called `name` in PATH. */
export function whichSync(
  name: string,
  env: NodeJS.ProcessEnv = process.env,
  platform: NodeJS.Platform = process.platform,
  isExecutable: (p: string) => boolean = defaultIsExecutable,
): string | undefined {
  const sep = platform === "win32" ? ";" : ":";
  const exts = platform === "win32" ? (env.PATHEXT ?? ".EXE;.CMD;.BAT").split(";") : [""];
  for (const dir of (env.PATH ?? env.Path ?? "").split(sep)) {
    if (!dir) continue;
    for (const ext of exts) {
      const candidate = path.join(dir, name + ext);
      if (isExecutable(candidate)) return candidate;
    }
  }
  return undefined;
}

function defaultIsExecutable(p: string): boolean {
  // eslint-disable-next-line @typescript-eslint/no-var-requires
  const fs = require("fs") as typeof import("fs");
  try {
    const st = fs.statSync(p);
    if (!st.isFile()) return false;
    fs.accessSync(p, fs.constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** The snippet run with the chosen interpreter before starting the server: version check and real path. */
export const PROBE_INTERPRETER_SNIPPET =
  "import sys, json; print(json.dumps({'version': list(sys.version_info[:3]), 'executable': sys.executable}))";

export interface InterpreterInfo {
  version: [number, number, number];
  executable: string;
}

export const SUPPORTED_MIN: [number, number] = [3, 10];
export const SUPPORTED_MAX: [number, number] = [3, 13];

/** Parses the snippet's output; returns an error message for unsupported versions. */
export function checkInterpreterInfo(stdout: string): { info?: InterpreterInfo; error?: string } {
  let info: InterpreterInfo;
  try {
    const line = stdout.trim().split(/\r?\n/).pop() ?? "";
    info = JSON.parse(line) as InterpreterInfo;
  } catch {
    return { error: `could not read the interpreter's version from ${JSON.stringify(stdout.slice(0, 200))}` };
  }
  const [major, minor] = info.version;
  const v = major * 100 + minor;
  if (v < SUPPORTED_MIN[0] * 100 + SUPPORTED_MIN[1] || v > SUPPORTED_MAX[0] * 100 + SUPPORTED_MAX[1]) {
    return {
      info,
      error: `Python ${major}.${minor} is not supported: Torch Sanity needs Python ${SUPPORTED_MIN.join(".")}–${SUPPORTED_MAX.join(".")}`,
    };
  }
  return { info };
}
