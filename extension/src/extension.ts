/**
 * Torch Sanity for VS Code: a thin client. It starts the Python language server (bundled dependencies, the user's
 * interpreter), and adds the probe command, CodeLens, report webview, status bar item and output channel.
 * All analysis lives in Python.
 */
import { execFile } from "child_process";
import * as crypto from "crypto";
import * as fs from "fs";
import * as path from "path";
import * as vscode from "vscode";
import {
  CloseAction,
  ErrorAction,
  LanguageClient,
  RevealOutputChannelOn,
  State,
  WorkDoneProgress,
  WorkDoneProgressCancelNotification,
  type LanguageClientOptions,
  type ServerOptions,
} from "vscode-languageclient/node";
import { findEntryPoints } from "./codelens";
import {
  NoInterpreterError,
  PROBE_INTERPRETER_SNIPPET,
  checkInterpreterInfo,
  resolveInterpreter,
  whichSync,
  type ResolvedInterpreter,
} from "./interpreter";
import { overallVerdict, renderReportHtml, type ProbeReport } from "./report";
import { RestartScheduler } from "./restart";
import { RESTART_SETTINGS, toRunProbeParams, toServerSettings, type Getter } from "./settings";

const CLIENT_ID = "torchsanity";
const PYTHON_EXTENSION_ID = "ms-python.python";
const RESTRICTED_MESSAGE =
  "Torch Sanity: the sanity probe runs your training script, so it is disabled in Restricted Mode. " +
  "Static analysis still works. Trust this workspace to run the probe.";

let state: ExtensionState | undefined;

export async function activate(context: vscode.ExtensionContext): Promise<{ state: ExtensionState }> {
  state = new ExtensionState(context);
  context.subscriptions.push(state);
  await state.init();
  return { state };
}

export async function deactivate(): Promise<void> {
  await state?.stopClient();
}

function getter(scope?: vscode.ConfigurationScope): Getter {
  const cfg = vscode.workspace.getConfiguration("torchsanity", scope);
  return <T>(key: string) => cfg.get<T>(key);
}

interface StoredReport {
  report: ProbeReport;
  uri: string;
  receivedAt: Date;
}

class ExtensionState implements vscode.Disposable {
  readonly output: vscode.OutputChannel;
  readonly status: vscode.StatusBarItem;
  client: LanguageClient | undefined;
  interpreter: ResolvedInterpreter | undefined;
  serverState: "starting" | "running" | "stopped" | "error" = "stopped";
  serverError: string | undefined;
  readonly reports = new Map<string, StoredReport>();
  lastReport: StoredReport | undefined;
  private readonly probesInFlight = new Set<string>();
  private readonly disposables: vscode.Disposable[] = [];
  private readonly clientDisposables: vscode.Disposable[] = [];
  private readonly scheduler: RestartScheduler;
  private readonly lensChanged = new vscode.EventEmitter<void>();
  private panel: vscode.WebviewPanel | undefined;
  private panelUri: string | undefined;
  private pendingReport = new Map<string, (r: ProbeReport | undefined) => void>();
  private saidFallback = false;
  private probeCounter = 0;
  private pythonEnvListener: vscode.Disposable | undefined;

  constructor(readonly context: vscode.ExtensionContext) {
    this.output = vscode.window.createOutputChannel("Torch Sanity");
    this.status = vscode.window.createStatusBarItem("torchsanity.status", vscode.StatusBarAlignment.Left, 50);
    this.status.name = "Torch Sanity";
    this.status.command = "torchsanity.showProbeReport";
    this.scheduler = new RestartScheduler((reasons) => this.restart(reasons));
  }

  log(message: string): void {
    this.output.appendLine(`[${new Date().toISOString().slice(11, 23)}] ${message}`);
  }

  async init(): Promise<void> {
    const { subscriptions } = this.context;
    subscriptions.push(
      vscode.commands.registerCommand("torchsanity.runSanityProbe", (arg?: vscode.Uri | string) => this.runProbe(arg)),
      vscode.commands.registerCommand("torchsanity.showProbeReport", (arg?: vscode.Uri | string) => this.showReport(arg)),
      vscode.commands.registerCommand("torchsanity.restartServer", () => this.scheduler.request("command")),
      vscode.commands.registerCommand("torchsanity.showOutput", () => this.output.show(true)),
      vscode.languages.registerCodeLensProvider(
        [{ scheme: "file", language: "python" }],
        { provideCodeLenses: (doc) => this.codeLenses(doc), onDidChangeCodeLenses: this.lensChanged.event },
      ),
      vscode.workspace.onDidChangeConfiguration((e) => {
        if (RESTART_SETTINGS.some((s) => e.affectsConfiguration(s))) {
          void this.scheduler.requestDebounced("settings changed");
        }
        if (e.affectsConfiguration("torchsanity.codeLens")) this.lensChanged.fire();
      }),
      vscode.workspace.onDidGrantWorkspaceTrust(() => {
        this.log("Workspace trusted: restarting the server with the probe enabled.");
        this.lensChanged.fire();
        void this.scheduler.request("workspace trusted");
      }),
      vscode.window.onDidChangeActiveTextEditor(() => this.updateStatus()),
    );
    this.status.show();
    this.watchPythonExtension();
    await this.scheduler.request("activation");
  }

  dispose(): void {
    this.scheduler.dispose();
    this.pythonEnvListener?.dispose();
    for (const d of this.disposables) d.dispose();
    this.panel?.dispose();
    this.status.dispose();
    this.lensChanged.dispose();
    this.output.dispose();
  }

  // ------------------------------------------------------------------------------------------------- interpreter

  private pythonExtension(): vscode.Extension<any> | undefined {
    return vscode.extensions.getExtension(PYTHON_EXTENSION_ID);
  }

  private async pythonExtensionInterpreter(): Promise<string | undefined> {
    const ext = this.pythonExtension();
    if (!ext) return undefined;
    const api = ext.isActive ? ext.exports : await ext.activate();
    const resource = vscode.workspace.workspaceFolders?.[0]?.uri;
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

  private watchPythonExtension(): void {
    const hook = () => {
      const ext = this.pythonExtension();
      if (!ext || this.pythonEnvListener) return;
      Promise.resolve(ext.isActive ? ext.exports : ext.activate())
        .then((api: any) => {
          const event = api?.environments?.onDidChangeActiveEnvironmentPath ?? api?.settings?.onDidChangeExecutionDetails;
          if (typeof event === "function") {
            this.pythonEnvListener = event(() => {
              if (!(vscode.workspace.getConfiguration("torchsanity").get<string>("interpreter") ?? "").trim()) {
                void this.scheduler.requestDebounced("Python interpreter changed");
              }
            });
          }
        })
        .catch((err: unknown) => this.log(`Python extension API unavailable: ${String(err)}`));
    };
    hook();
    this.context.subscriptions.push(vscode.extensions.onDidChange(hook));
  }

  private async resolve(): Promise<ResolvedInterpreter> {
    const setting = vscode.workspace.getConfiguration("torchsanity").inspect<string>("interpreter");
    // machine scope: only the user (global) value counts, whatever a workspace file says
    const value = setting?.globalValue ?? setting?.defaultValue;
    return resolveInterpreter({
      setting: value,
      trusted: vscode.workspace.isTrusted,
      pythonExtensionInstalled: this.pythonExtension() !== undefined,
      pythonExtensionInterpreter: () => this.pythonExtensionInterpreter(),
      which: (name) => whichSync(name),
    });
  }

  private checkInterpreter(python: string): Promise<{ version?: string; error?: string }> {
    return new Promise((resolve) => {
      execFile(python, ["-I", "-c", PROBE_INTERPRETER_SNIPPET], { timeout: 20000 }, (err, stdout, stderr) => {
        if (err) {
          resolve({ error: `${python} could not be run: ${(stderr || err.message).trim().split("\n").pop()}` });
          return;
        }
        const { info, error } = checkInterpreterInfo(stdout);
        resolve({ version: info?.version.join("."), error });
      });
    });
  }

  // ------------------------------------------------------------------------------------------------ server life

  async stopClient(): Promise<void> {
    const client = this.client;
    this.client = undefined;
    for (const d of this.clientDisposables.splice(0)) d.dispose();
    if (client) {
      try {
        if (client.state !== State.Stopped) await client.stop(5000);
      } catch (err) {
        this.log(`Stopping the server: ${String(err)}`);
      }
      try {
        await client.dispose(2000);
      } catch {
        /* already gone */
      }
    }
  }

  private async restart(reasons: string[]): Promise<void> {
    this.log(`Starting the server (${reasons.join(", ")}).`);
    this.serverState = "starting";
    this.serverError = undefined;
    this.updateStatus();
    await this.stopClient();
    try {
      await this.startClient();
    } catch (err) {
      this.serverState = "error";
      this.serverError = err instanceof Error ? err.message : String(err);
      this.log(`The server did not start: ${this.serverError}`);
      this.updateStatus();
      const choice = await vscode.window.showErrorMessage(
        `Torch Sanity: ${this.serverError}`,
        "Open Settings",
        "Show Output",
      );
      if (choice === "Open Settings") {
        void vscode.commands.executeCommand("workbench.action.openSettings", "torchsanity.interpreter");
      } else if (choice === "Show Output") {
        this.output.show(true);
      }
    }
  }

  private serverCommand(python: string): { args: string[]; description: string } {
    const useBundled = vscode.workspace.getConfiguration("torchsanity").get<boolean>("useBundledServer", true);
    const launcher = path.join(this.context.extensionPath, "extension", "bundled", "launch.py");
    if (useBundled && fs.existsSync(launcher)) {
      // -I: isolated mode: no PYTHONPATH, no user site, no script directory of the workspace on sys.path
      return { args: ["-I", launcher, "server"], description: `bundled server (${launcher})` };
    }
    if (useBundled) this.log(`No bundled server at ${launcher}; using the interpreter's own torchsanity.`);
    return { args: ["-m", "torchsanity.server", "server"], description: "torchsanity from the interpreter's environment" };
  }

  private async startClient(): Promise<void> {
    let interpreter: ResolvedInterpreter;
    try {
      interpreter = await this.resolve();
    } catch (err) {
      if (err instanceof NoInterpreterError) throw err;
      throw new Error(`could not find a Python interpreter: ${String(err)}`);
    }
    this.interpreter = interpreter;
    if (interpreter.note) {
      this.log(interpreter.note);
      if (interpreter.source === "path" && !this.saidFallback) {
        this.saidFallback = true;
        void vscode.window.showInformationMessage(`Torch Sanity: ${interpreter.note}`);
      }
    }
    const check = await this.checkInterpreter(interpreter.path);
    if (check.error) throw new Error(check.error);
    const { args, description } = this.serverCommand(interpreter.path);
    this.log(`Interpreter: ${interpreter.path} (Python ${check.version}, from ${interpreter.source}); ${description}.`);

    const folder = vscode.workspace.workspaceFolders?.[0]?.uri.fsPath;
    const serverOptions: ServerOptions = {
      command: interpreter.path,
      args,
      options: {
        cwd: folder && fs.existsSync(folder) ? folder : this.context.extensionPath,
        env: { ...process.env, PYTHONUNBUFFERED: "1", PYTHONIOENCODING: "utf-8", PYTHONDONTWRITEBYTECODE: "1" },
      },
    };
    let restarts: number[] = [];
    const clientOptions: LanguageClientOptions = {
      documentSelector: [
        { scheme: "file", language: "python" },
        { scheme: "untitled", language: "python" },
        { scheme: "vscode-notebook-cell", language: "python" },
      ],
      outputChannel: this.output,
      revealOutputChannelOn: RevealOutputChannelOn.Never,
      initializationOptions: {
        settings: toServerSettings(getter()),
        interpreter: interpreter.path,
        python: interpreter.path,
        trusted: vscode.workspace.isTrusted,
        client: "vscode",
      },
      synchronize: { configurationSection: "torchsanity" },
      middleware: {
        workspace: {
          configuration: async (params, token, next) => {
            const result = await next(params, token);
            if (!Array.isArray(result)) return result;
            return params.items.map((item, i) => {
              if (item.section !== undefined && item.section !== "torchsanity") return result[i];
              const scope = item.scopeUri ? vscode.Uri.parse(item.scopeUri) : undefined;
              return { ...toServerSettings(getter(scope)), interpreter: interpreter.path, trusted: vscode.workspace.isTrusted };
            });
          },
        },
      },
      errorHandler: {
        error: () => ({ action: ErrorAction.Continue }),
        closed: () => {
          const now = Date.now();
          restarts = restarts.filter((t) => now - t < 180000);
          restarts.push(now);
          if (restarts.length <= 3) {
            this.log("The server stopped unexpectedly; restarting it.");
            return { action: CloseAction.Restart };
          }
          this.serverState = "error";
          this.serverError = "the server stopped 4 times in 3 minutes";
          this.updateStatus();
          void vscode.window.showErrorMessage(
            "Torch Sanity: the language server keeps stopping; see the output. Run 'Torch Sanity: Restart Server' to try again.",
          );
          return { action: CloseAction.DoNotRestart, handled: true };
        },
      },
      initializationFailedHandler: (err) => {
        this.log(`Initialization failed: ${String(err)}`);
        return false;
      },
    };
    const client = new LanguageClient(CLIENT_ID, "Torch Sanity", serverOptions, clientOptions);
    this.client = client;
    this.clientDisposables.push(
      client.onDidChangeState((e) => {
        if (this.client !== client) return;
        this.serverState = e.newState === State.Running ? "running" : e.newState === State.Starting ? "starting" : "stopped";
        this.updateStatus();
      }),
      client.onNotification("torchsanity/probeReport", (params: unknown) => this.onReport(params)),
    );
    await client.start();
    this.serverState = "running";
    this.updateStatus();
    this.log("Server running.");
  }

  // --------------------------------------------------------------------------------------------------- reports

  /** `torchsanity/probeReport`: `{uri, status, exitCode, report}` (a bare report is accepted too). */
  private onReport(params: unknown): void {
    const p = (params && typeof params === "object" ? params : {}) as {
      uri?: string;
      status?: string;
      report?: ProbeReport | null;
    } & ProbeReport;
    const wrapped = "report" in p || (typeof p.status === "string" && !Array.isArray(p.checks));
    const report = wrapped ? (p.report && typeof p.report === "object" ? p.report : undefined) : (p as ProbeReport);
    let uri = typeof p.uri === "string" ? p.uri : undefined;
    if (!uri && typeof report?.script === "string") uri = vscode.Uri.file(report.script).toString();
    const waiter = uri ? this.pendingReport.get(uri) : undefined;
    if (!uri || !report) {
      this.log(`Probe ${uri ?? ""}: ${p.status ?? "no report"}.`);
      if (uri && waiter) {
        this.pendingReport.delete(uri);
        waiter(undefined);
      }
      return;
    }
    const stored = { report, uri, receivedAt: new Date() };
    this.reports.set(uri, stored);
    this.lastReport = stored;
    this.log(`Probe report for ${uri}: ${overallVerdict(report)}${p.status ? ` (${p.status})` : ""}.`);
    if (waiter) {
      this.pendingReport.delete(uri);
      waiter(report);
    }
    this.updateStatus();
    this.lensChanged.fire();
    if (this.panel && this.panelUri === uri) this.renderPanel(stored);
  }

  private reportFor(arg?: vscode.Uri | string): StoredReport | undefined {
    const uri = typeof arg === "string" ? arg : arg?.toString() ?? vscode.window.activeTextEditor?.document.uri.toString();
    return (uri && this.reports.get(uri)) || (arg ? undefined : this.lastReport);
  }

  async showReport(arg?: vscode.Uri | string): Promise<void> {
    const stored = this.reportFor(arg);
    if (!stored) {
      const choice = await vscode.window.showInformationMessage(
        "Torch Sanity: no probe report yet. Run the sanity probe on a training script first.",
        "Run Sanity Probe",
      );
      if (choice) await this.runProbe(arg);
      return;
    }
    this.renderPanel(stored, true);
  }

  private renderPanel(stored: StoredReport, reveal = false): void {
    const webviewRoot = vscode.Uri.joinPath(this.context.extensionUri, "out", "webview");
    if (!this.panel) {
      this.panel = vscode.window.createWebviewPanel(
        "torchsanity.probeReport",
        "Probe Report",
        { viewColumn: vscode.ViewColumn.Beside, preserveFocus: true },
        { enableScripts: true, localResourceRoots: [webviewRoot], retainContextWhenHidden: false, enableCommandUris: false },
      );
      this.panel.onDidDispose(() => (this.panel = undefined));
      this.panel.webview.onDidReceiveMessage((msg: { type?: string; line?: number }) => {
        const uri = this.panelUri;
        if (!uri || uri === "unknown") return;
        if (msg?.type === "reveal") {
          const line = Math.max(0, Number(msg.line ?? 1) - 1);
          void vscode.window.showTextDocument(vscode.Uri.parse(uri), {
            viewColumn: vscode.ViewColumn.One,
            selection: new vscode.Range(line, 0, line, 0),
          });
        } else if (msg?.type === "rerun") {
          void this.runProbe(uri);
        }
      });
    } else if (reveal) {
      this.panel.reveal(undefined, true);
    }
    this.panelUri = stored.uri;
    const webview = this.panel.webview;
    const name = stored.report.script ? path.basename(String(stored.report.script)) : "script";
    this.panel.title = `Probe Report: ${name}`;
    webview.html = renderReportHtml(stored.report, {
      nonce: crypto.randomBytes(16).toString("base64"),
      cspSource: webview.cspSource,
      scriptUri: webview.asWebviewUri(vscode.Uri.joinPath(webviewRoot, "report.js")).toString(),
      styleUri: webview.asWebviewUri(vscode.Uri.joinPath(webviewRoot, "report.css")).toString(),
      receivedAt: stored.receivedAt,
    });
  }

  // ----------------------------------------------------------------------------------------------------- probe

  async runProbe(arg?: vscode.Uri | string): Promise<void> {
    if (!vscode.workspace.isTrusted) {
      const choice = await vscode.window.showWarningMessage(RESTRICTED_MESSAGE, "Manage Workspace Trust");
      if (choice) void vscode.commands.executeCommand("workbench.trust.manage");
      return;
    }
    const target = typeof arg === "string" ? vscode.Uri.parse(arg) : arg ?? vscode.window.activeTextEditor?.document.uri;
    if (!target || target.scheme !== "file" || !target.fsPath.endsWith(".py")) {
      void vscode.window.showWarningMessage("Torch Sanity: open a Python training script (a .py file) to run the sanity probe.");
      return;
    }
    const client = this.client;
    if (!client || this.serverState !== "running" || !this.interpreter) {
      void vscode.window.showErrorMessage(
        `Torch Sanity: the language server is not running${this.serverError ? ` (${this.serverError})` : ""}.`,
      );
      return;
    }
    const doc = vscode.workspace.textDocuments.find((d) => d.uri.toString() === target.toString());
    if (doc?.isDirty) await doc.save();
    const uri = target.toString();
    if (this.probesInFlight.has(uri)) {
      void vscode.window.showInformationMessage("Torch Sanity: a probe of this script is already running.");
      return;
    }
    this.probesInFlight.add(uri);
    this.updateStatus();
    const token = `torchsanity-probe-${process.pid}-${++this.probeCounter}`;
    const params = toRunProbeParams(uri, this.interpreter.path, getter(target), token);
    const name = path.basename(target.fsPath);
    this.log(`Probe ${name}: ${JSON.stringify(params)}`);
    let cancelled = false;
    try {
      const report = await vscode.window.withProgress(
        { location: vscode.ProgressLocation.Notification, title: `Torch Sanity: probing ${name}`, cancellable: true },
        async (progress, cancelToken) => {
          let lastPct = 0;
          const sub = client.onProgress(WorkDoneProgress.type, token, (value) => {
            if (value.kind === "end") return;
            const pct = typeof value.percentage === "number" ? value.percentage : undefined;
            const increment = pct !== undefined && pct > lastPct ? pct - lastPct : undefined;
            if (pct !== undefined) lastPct = Math.max(lastPct, pct);
            const message = value.kind === "begin" ? value.message ?? value.title : value.message;
            progress.report({ message, increment });
          });
          const cancelSub = cancelToken.onCancellationRequested(() => {
            cancelled = true;
            this.log(`Probe ${name}: cancelled by the user.`);
            // both ways the LSP offers: the work-done token, and $/cancelRequest (sendRequest's token below)
            void client.sendNotification(WorkDoneProgressCancelNotification.type, { token }).catch(() => undefined);
          });
          const reportArrived = new Promise<ProbeReport | undefined>((resolve) => this.pendingReport.set(uri, resolve));
          try {
            const result = await client.sendRequest<unknown>("torchsanity/runProbe", params, cancelToken);
            const fromResult = asReport(result);
            if (fromResult) return fromResult;
            const status = (result as { status?: string } | null)?.status;
            if (status === "cancelled" || status === "superseded") {
              cancelled = cancelled || status === "cancelled";
              return undefined;
            }
            return await Promise.race([reportArrived, delay(10000).then(() => undefined)]);
          } finally {
            this.pendingReport.delete(uri);
            sub.dispose();
            cancelSub.dispose();
          }
        },
      );
      if (cancelled) {
        void vscode.window.showInformationMessage(`Torch Sanity: probe of ${name} cancelled.`);
        return;
      }
      if (!report) {
        void vscode.window.showWarningMessage(`Torch Sanity: the probe of ${name} finished without a report; see the output.`);
        return;
      }
      if (this.reports.get(uri)?.report !== report) this.onReport({ uri, report });
      if (getter(target)<boolean>("probe.openReport") !== false) this.renderPanel(this.reports.get(uri)!, true);
    } catch (err) {
      if (cancelled) {
        void vscode.window.showInformationMessage(`Torch Sanity: probe of ${name} cancelled.`);
      } else {
        const msg = err instanceof Error ? err.message : String(err);
        this.log(`Probe ${name} failed: ${msg}`);
        void vscode.window.showErrorMessage(`Torch Sanity: the probe of ${name} failed: ${msg}`, "Show Output").then((c) => {
          if (c) this.output.show(true);
        });
      }
    } finally {
      this.probesInFlight.delete(uri);
      this.updateStatus();
    }
  }

  // --------------------------------------------------------------------------------------------- lens & status

  private codeLenses(doc: vscode.TextDocument): vscode.CodeLens[] {
    if (!vscode.workspace.getConfiguration("torchsanity", doc.uri).get<boolean>("codeLens", true)) return [];
    const entries = findEntryPoints(doc.getText());
    const lenses: vscode.CodeLens[] = [];
    for (const entry of entries) {
      const range = new vscode.Range(entry.line, 0, entry.line, 0);
      if (vscode.workspace.isTrusted) {
        lenses.push(
          new vscode.CodeLens(range, {
            title: "$(beaker) Run Sanity Probe",
            tooltip: "Run Karpathy's sanity checks on this training script (runs the script's first steps)",
            command: "torchsanity.runSanityProbe",
            arguments: [doc.uri],
          }),
        );
      } else {
        lenses.push(
          new vscode.CodeLens(range, {
            title: "$(shield) Sanity Probe disabled in Restricted Mode",
            tooltip: RESTRICTED_MESSAGE,
            command: "torchsanity.runSanityProbe",
            arguments: [doc.uri],
          }),
        );
      }
      const stored = this.reports.get(doc.uri.toString());
      if (stored) {
        lenses.push(
          new vscode.CodeLens(range, {
            title: `Probe Report: ${overallVerdict(stored.report)}`,
            command: "torchsanity.showProbeReport",
            arguments: [doc.uri],
          }),
        );
      }
    }
    return lenses;
  }

  updateStatus(): void {
    const s = this.status;
    const probing = this.probesInFlight.size > 0;
    const active = vscode.window.activeTextEditor?.document.uri.toString();
    const stored = (active && this.reports.get(active)) || this.lastReport;
    const verdict = stored ? overallVerdict(stored.report) : undefined;
    const icon = { starting: "$(sync~spin)", running: "$(beaker)", stopped: "$(circle-slash)", error: "$(error)" }[this.serverState];
    let text = `${icon} Torch Sanity`;
    if (probing) text = "$(loading~spin) Torch Sanity: probing";
    else if (verdict) text += `: ${verdict}`;
    s.text = text;
    const lines = [
      `Server: ${this.serverState}${this.serverError ? ` — ${this.serverError}` : ""}`,
      this.interpreter ? `Interpreter: ${this.interpreter.path} (${this.interpreter.source})` : "",
      vscode.workspace.isTrusted ? "" : "Restricted Mode: static analysis only, the probe is disabled",
      stored ? `Last probe (${path.basename(String(stored.report.script ?? stored.uri))}): ${verdict}` : "No probe run yet",
    ].filter(Boolean);
    s.tooltip = lines.join("\n");
    s.backgroundColor =
      this.serverState === "error" || verdict === "fail" || verdict === "error"
        ? new vscode.ThemeColor("statusBarItem.errorBackground")
        : verdict === "warn"
          ? new vscode.ThemeColor("statusBarItem.warningBackground")
          : undefined;
    s.command = this.serverState === "error" ? "torchsanity.showOutput" : "torchsanity.showProbeReport";
  }
}

function asReport(value: unknown): ProbeReport | undefined {
  if (!value || typeof value !== "object") return undefined;
  const v = value as { report?: unknown; checks?: unknown };
  if (v.report && typeof v.report === "object") return v.report as ProbeReport;
  if (Array.isArray(v.checks)) return v as ProbeReport;
  return undefined;
}

function delay(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
