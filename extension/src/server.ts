/**
 * The language server's life: resolve the interpreter, start the server (isolated, from outside the workspace),
 * restart it when the interpreter changes, tell it when the workspace becomes trusted, stop it.
 */
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import * as vscode from "vscode";
import {
  CloseAction,
  ErrorAction,
  LanguageClient,
  RevealOutputChannelOn,
  State,
  type LanguageClientOptions,
  type ServerOptions,
} from "vscode-languageclient/node";
import { messageOf, type Log } from "./log";
import {
  NoInterpreterError,
  PythonExtension,
  checkInterpreter,
  isolatedCwd,
  resolveInterpreter,
  serverLaunch,
  whichSync,
  type ResolvedInterpreter,
} from "./python";
import { RestartScheduler } from "./restart";
import { RESTART_SETTINGS, initializationOptions } from "./settings";

export type ServerState = "starting" | "running" | "stopped" | "error";

export const PROBE_REPORT_NOTIFICATION = "torchsanity/probeReport";
export const WORKSPACE_TRUST_NOTIFICATION = "torchsanity/workspaceTrust";

/** A machine-scoped setting: only the user's value counts, whatever a workspace file says. */
function machineSetting<T>(key: string): T | undefined {
  const inspected = vscode.workspace.getConfiguration("torchsanity").inspect<T>(key);
  return inspected?.globalValue ?? inspected?.defaultValue;
}

export class LanguageServer implements vscode.Disposable {
  client: LanguageClient | undefined;
  interpreter: ResolvedInterpreter | undefined;
  state: ServerState = "stopped";
  error: string | undefined;
  private readonly changed = new vscode.EventEmitter<void>();
  /** Fires when `state`, `error` or `interpreter` change. */
  readonly onDidChange = this.changed.event;
  private readonly python: PythonExtension;
  private readonly scheduler: RestartScheduler;
  private readonly disposables: vscode.Disposable[] = [];
  private readonly clientDisposables: vscode.Disposable[] = [];
  private saidFallback = false;

  constructor(
    private readonly context: vscode.ExtensionContext,
    private readonly log: Log,
    private readonly onProbeReport: (params: unknown) => void,
  ) {
    this.python = new PythonExtension(vscode.extensions, (message) => log.warn(message));
    this.scheduler = new RestartScheduler((reasons) => this.restart(reasons));
    this.disposables.push(
      this.changed,
      vscode.workspace.onDidChangeConfiguration((e) => {
        if (RESTART_SETTINGS.some((s) => e.affectsConfiguration(s))) void this.scheduler.requestDebounced("settings changed");
      }),
      vscode.workspace.onDidGrantWorkspaceTrust(() => void this.onTrusted()),
      this.python.watch(() => {
        if (!(machineSetting<string>("interpreter") ?? "").trim()) void this.scheduler.requestDebounced("Python interpreter changed");
      }),
    );
  }

  /** Starts the server (or restarts it, after the start or restart in progress). */
  start(reason: string): Promise<void> {
    return this.scheduler.request(reason);
  }

  dispose(): void {
    this.scheduler.dispose();
    for (const d of this.disposables) d.dispose();
  }

  private setState(state: ServerState, error?: string): void {
    this.state = state;
    this.error = error;
    this.changed.fire();
  }

  private resolve(): Promise<ResolvedInterpreter> {
    return resolveInterpreter({
      setting: machineSetting<string>("interpreter"),
      trusted: vscode.workspace.isTrusted,
      pythonExtensionInstalled: this.python.installed,
      pythonExtensionInterpreter: () => this.python.activeInterpreter(vscode.workspace.workspaceFolders?.[0]?.uri),
      which: (name) => whichSync(name),
    });
  }

  /** The working directory of every Python we start: outside every workspace folder. */
  private cwd(): string {
    const storage = this.context.globalStorageUri.fsPath;
    try {
      fs.mkdirSync(storage, { recursive: true });
    } catch (err) {
      this.log.warn(`Cannot create ${storage}: ${messageOf(err)}`);
    }
    const folders = (vscode.workspace.workspaceFolders ?? []).map((f) => f.uri.fsPath);
    const candidates = [storage, os.tmpdir(), path.parse(os.tmpdir()).root].filter((dir) => fs.existsSync(dir));
    return isolatedCwd(candidates, folders);
  }

  /** The workspace became trusted: the server may now run probes; the interpreter may change. */
  private async onTrusted(): Promise<void> {
    this.log.info("Workspace trusted: the probe is enabled.");
    if (this.client?.state === State.Running) {
      await this.client
        .sendNotification(WORKSPACE_TRUST_NOTIFICATION, { trusted: true })
        .catch((err: unknown) => this.log.warn(`Telling the server about the trust: ${messageOf(err)}`));
    }
    let interpreter: string | undefined;
    try {
      interpreter = (await this.resolve()).path;
    } catch {
      interpreter = undefined;
    }
    // a restart in progress may have started the server before the trust; a new interpreter needs a new server
    if (this.scheduler.busy || this.client?.state !== State.Running || interpreter !== this.interpreter?.path) {
      await this.scheduler.request("workspace trusted");
    }
  }

  async stop(): Promise<void> {
    const client = this.client;
    this.client = undefined;
    for (const d of this.clientDisposables.splice(0)) d.dispose();
    if (!client) return;
    try {
      if (client.state !== State.Stopped) await client.stop(5000);
    } catch (err) {
      this.log.warn(`Stopping the server: ${messageOf(err)}`);
    }
    try {
      await client.dispose(2000);
    } catch {
      /* already gone */
    }
  }

  private async restart(reasons: string[]): Promise<void> {
    this.log.info(`Starting the server (${reasons.join(", ")}).`);
    this.setState("starting");
    await this.stop();
    try {
      await this.startClient();
    } catch (err) {
      const error = messageOf(err);
      this.setState("error", error);
      this.log.error(`The server did not start: ${error}`);
      const choice = await vscode.window.showErrorMessage(`Torch Sanity: ${error}`, "Open Settings", "Show Output");
      if (choice === "Open Settings") {
        void vscode.commands.executeCommand("workbench.action.openSettings", "torchsanity.interpreter");
      } else if (choice === "Show Output") {
        this.log.show(true);
      }
    }
  }

  private async startClient(): Promise<void> {
    let interpreter: ResolvedInterpreter;
    try {
      interpreter = await this.resolve();
    } catch (err) {
      if (err instanceof NoInterpreterError) throw err;
      throw new Error(`could not find a Python interpreter: ${messageOf(err)}`);
    }
    this.interpreter = interpreter;
    if (interpreter.note) {
      this.log.info(interpreter.note);
      if (interpreter.source === "path" && !this.saidFallback) {
        this.saidFallback = true;
        void vscode.window.showInformationMessage(`Torch Sanity: ${interpreter.note}`);
      }
    }
    const cwd = this.cwd();
    const check = await checkInterpreter(interpreter.path, cwd);
    if (check.error) throw new Error(check.error);
    const launch = serverLaunch({
      python: interpreter.path,
      useBundled: machineSetting<boolean>("useBundledServer") !== false,
      launcher: path.join(this.context.extensionPath, "extension", "bundled", "launch.py"),
      cwd,
    });
    if (launch.note) this.log.warn(launch.note);
    this.log.info(
      `Interpreter: ${interpreter.path} (Python ${check.version}, from ${interpreter.source}); ${launch.description}; ` +
        `${launch.command} ${launch.args.join(" ")} in ${launch.cwd}.`,
    );

    const serverOptions: ServerOptions = { command: launch.command, args: launch.args, options: { cwd: launch.cwd, env: process.env } };
    let restarts: number[] = [];
    const clientOptions: LanguageClientOptions = {
      documentSelector: [
        { scheme: "file", language: "python" },
        { scheme: "untitled", language: "python" },
        { scheme: "vscode-notebook-cell", language: "python" },
      ],
      outputChannel: this.log,
      revealOutputChannelOn: RevealOutputChannelOn.Never,
      initializationOptions: initializationOptions(
        vscode.workspace.getConfiguration().get("torchsanity") ?? {},
        vscode.workspace.isTrusted,
      ),
      synchronize: { configurationSection: "torchsanity" },
      errorHandler: {
        error: () => ({ action: ErrorAction.Continue }),
        closed: () => {
          const now = Date.now();
          restarts = restarts.filter((t) => now - t < 180000);
          restarts.push(now);
          if (restarts.length <= 3) {
            this.log.warn("The server stopped unexpectedly; restarting it.");
            return { action: CloseAction.Restart };
          }
          this.setState("error", "the server stopped 4 times in 3 minutes");
          void vscode.window.showErrorMessage(
            "Torch Sanity: the language server keeps stopping; see the output. Run 'Torch Sanity: Restart Server' to try again.",
          );
          return { action: CloseAction.DoNotRestart, handled: true };
        },
      },
      initializationFailedHandler: (err) => {
        this.log.error(`Initialization failed: ${messageOf(err)}`);
        return false;
      },
    };
    const client = new LanguageClient("torchsanity", "Torch Sanity", serverOptions, clientOptions);
    this.client = client;
    this.clientDisposables.push(
      client.onDidChangeState((e) => {
        if (this.client !== client || (this.state === "error" && e.newState === State.Stopped)) return;
        this.setState(e.newState === State.Running ? "running" : e.newState === State.Starting ? "starting" : "stopped");
      }),
      client.onNotification(PROBE_REPORT_NOTIFICATION, (params: unknown) => this.onProbeReport(params)),
    );
    await client.start();
    this.setState("running");
    this.log.info("Server running.");
  }
}
