/**
 * Python: which interpreter runs the language server and the probe, and how the extension starts it. Pure logic
 * (no runtime vscode import): the vscode-facing parts are injected, so it is unit-tested without VS Code.
 *
 * Which: the machine-scoped `torchsanity.interpreter` setting, then the Python extension's active interpreter
 * (optional extension; never in an untrusted workspace, where the workspace could have chosen it), then `python3`
 * on PATH (`python` on Windows).
 *
 * How: always in isolated mode (`-I`: no script or current directory, PYTHONPATH or user site on `sys.path`) and
 * from a directory outside every workspace folder, so nothing in the workspace is imported, trusted or not.
 */
import { execFile } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import type * as vscode from "vscode";

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
  try {
    const st = fs.statSync(p);
    if (!st.isFile()) return false;
    fs.accessSync(p, fs.constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

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

// ------------------------------------------------------------------------------------------------ how we start it

/** One way of starting Python: the command line and the working directory. */
export interface PythonLaunch {
  command: string;
  args: string[];
  cwd: string;
  description: string;
  /** Something to log about this choice. */
  note?: string;
}

function isInside(child: string, parent: string): boolean {
  const rel = path.relative(path.resolve(parent), path.resolve(child));
  return rel === "" || (!rel.startsWith("..") && !path.isAbsolute(rel));
}

/**
 * The working directory for every Python the extension starts: the first candidate (the extension's global
 * storage, the system temp directory, the file-system root) that is outside every workspace folder.
 */
export function isolatedCwd(candidates: string[], workspaceFolders: readonly string[]): string {
  const outside = candidates.find((c) => c && !workspaceFolders.some((folder) => isInside(c, folder)));
  return outside ?? candidates.find(Boolean) ?? os.tmpdir();
}

export interface ServerLaunchInputs {
  python: string;
  /** The `torchsanity.useBundledServer` setting. */
  useBundled: boolean;
  /** `<extension>/extension/bundled/launch.py`, if the extension ships one. */
  launcher: string;
  cwd: string;
  exists?: (p: string) => boolean;
}

/** The language server's command line: the bundled launcher, else the interpreter's own `torchsanity`. */
export function serverLaunch(inputs: ServerLaunchInputs): PythonLaunch {
  const exists = inputs.exists ?? fs.existsSync;
  const base = { command: inputs.python, cwd: inputs.cwd };
  if (inputs.useBundled && exists(inputs.launcher)) {
    return { ...base, args: ["-I", inputs.launcher, "server"], description: `bundled server (${inputs.launcher})` };
  }
  const launch = {
    ...base,
    args: ["-I", "-m", "torchsanity.server", "server"],
    description: "torchsanity from the interpreter's environment",
  };
  return inputs.useBundled ? { ...launch, note: `No bundled server at ${inputs.launcher}; using the interpreter's own torchsanity.` } : launch;
}

/** The snippet run with the chosen interpreter before starting the server: version check and real path. */
export const PROBE_INTERPRETER_SNIPPET =
  "import sys, json; print(json.dumps({'version': list(sys.version_info[:3]), 'executable': sys.executable}))";

export function interpreterCheckLaunch(python: string, cwd: string): PythonLaunch {
  return { command: python, args: ["-I", "-c", PROBE_INTERPRETER_SNIPPET], cwd, description: "interpreter check" };
}

/** Runs the interpreter check: the Python version, or why this interpreter cannot run the server. */
export function checkInterpreter(python: string, cwd: string): Promise<{ version?: string; error?: string }> {
  const launch = interpreterCheckLaunch(python, cwd);
  return new Promise((resolve) => {
    execFile(launch.command, launch.args, { cwd: launch.cwd, timeout: 20000 }, (err, stdout, stderr) => {
      if (err) {
        resolve({ error: `${python} could not be run: ${(stderr || err.message).trim().split("\n").pop()}` });
        return;
      }
      const { info, error } = checkInterpreterInfo(stdout);
      resolve({ version: info?.version.join("."), error });
    });
  });
}

// ------------------------------------------------------------------------------------ the Python extension (optional)

const PYTHON_EXTENSION_ID = "ms-python.python";

/** The Python extension's active interpreter, through its environments API (or the older settings API). */
export async function activeInterpreterOf(api: any, resource: vscode.Uri | undefined): Promise<string | undefined> {
  const envs = api?.environments;
  if (envs?.getActiveEnvironmentPath) {
    const active = envs.getActiveEnvironmentPath(resource);
    const resolved = await envs.resolveEnvironment?.(active);
    const exe: string | undefined = resolved?.executable?.uri?.fsPath ?? active?.path;
    if (exe) return exe;
  }
  const details = api?.settings?.getExecutionDetails?.(resource);
  return details?.execCommand?.[0];
}

/** The Python extension, if installed: its active interpreter and an event when the user picks another. */
export class PythonExtension {
  private listener: { dispose(): unknown } | undefined;

  constructor(
    private readonly extensions: typeof vscode.extensions,
    private readonly log: (message: string) => void,
  ) {}

  get installed(): boolean {
    return this.extensions.getExtension(PYTHON_EXTENSION_ID) !== undefined;
  }

  private async api(): Promise<any> {
    const ext = this.extensions.getExtension(PYTHON_EXTENSION_ID);
    if (!ext) return undefined;
    return ext.isActive ? ext.exports : await ext.activate();
  }

  async activeInterpreter(resource: vscode.Uri | undefined): Promise<string | undefined> {
    return activeInterpreterOf(await this.api(), resource);
  }

  /** Calls `onChange` when the Python extension's active interpreter changes (hooks in once it is installed). */
  watch(onChange: () => void): vscode.Disposable {
    const hook = () => {
      if (this.listener || !this.installed) return;
      this.api()
        .then((api: any) => {
          const event = api?.environments?.onDidChangeActiveEnvironmentPath ?? api?.settings?.onDidChangeExecutionDetails;
          if (typeof event === "function" && !this.listener) this.listener = event(onChange);
        })
        .catch((err: unknown) => this.log(`Python extension API unavailable: ${String(err)}`));
    };
    hook();
    const sub = this.extensions.onDidChange(hook);
    return {
      dispose: () => {
        sub.dispose();
        this.listener?.dispose();
        this.listener = undefined;
      },
    };
  }
}
