/**
 * "Torch Sanity: Watch Training Run": sends `torchsanity/watch` for a script and shows a live webview — the page
 * is drawn by the server (`torchsanity/renderWatch`, the renderer of the CLI's report) and filled by the server's
 * `torchsanity/watchUpdate` notifications, which this file posts into it. Stop (the page's button, or closing the
 * panel) sends `torchsanity/watchStop`; the finished report then replaces the live page. Verdicts reach the editor
 * as the server's diagnostics. Disabled in untrusted workspaces.
 */
import * as crypto from "crypto";
import * as path from "path";
import * as vscode from "vscode";
import type { LanguageClient } from "vscode-languageclient/node";
import { messageOf, type Log } from "./log";
import { checkedPage, messagePage } from "./report";
import { scriptRun } from "./scriptTarget";
import type { LanguageServer } from "./server";
import { endMessage, progressText, readWatchUpdate, toWatchParams, type Verdict, type WatchUpdate } from "./watchModel";

export const WATCH_UPDATE_NOTIFICATION = "torchsanity/watchUpdate";
export const WATCH_RESTRICTED_MESSAGE =
  "Torch Sanity: watching a training run runs your script, so it is disabled in Restricted Mode. " +
  "Static analysis still works. Trust this workspace to watch a run.";

interface Watch {
  uri: string;
  name: string;
  panel: vscode.WebviewPanel;
  verdicts: Verdict[];
  step: number;
  loss: number | string | null;
  progress?: vscode.Progress<{ message?: string }>;
  ended: boolean;
  /** Messages for the live page, held until it says it listens ("ready"). */
  pending: unknown[] | undefined;
}

export class WatchRunner implements vscode.Disposable {
  private readonly watches = new Map<string, Watch>();
  private subscribed: LanguageClient | undefined;
  private subscription: vscode.Disposable | undefined;
  private counter = 0;

  constructor(
    private readonly extensionUri: vscode.Uri,
    private readonly server: LanguageServer,
    private readonly log: Log,
  ) {}

  dispose(): void {
    for (const w of this.watches.values()) this.stop(w);
    this.subscription?.dispose();
  }

  async run(arg?: unknown): Promise<void> {
    const run = await scriptRun(arg, this.server, this.log,
      { what: "Watch", restricted: WATCH_RESTRICTED_MESSAGE, purpose: "to watch its run" });
    if (!run) return;
    const { target, client, interpreter } = run;
    const uri = target.toString();
    const running = this.watches.get(uri);
    if (running && !running.ended) {
      running.panel.reveal(undefined, true);
      void vscode.window.showInformationMessage("Torch Sanity: a watch of this script is already running (Stop it in its panel).");
      return;
    }
    running?.panel.dispose();
    const doc = vscode.workspace.textDocuments.find((d) => d.uri.toString() === uri);
    if (doc?.isDirty) await doc.save();
    this.subscribe(client);
    const name = path.basename(target.fsPath);
    const watch: Watch = { uri, name, panel: this.createPanel(uri, name), verdicts: [], step: 0, loss: null, ended: false, pending: [] };
    this.watches.set(uri, watch);
    await this.render(watch, null);
    const token = `torchsanity-watch-${process.pid}-${++this.counter}`;
    const cfg = vscode.workspace.getConfiguration("torchsanity", target);
    const params = toWatchParams(uri, interpreter.path, <T>(key: string) => cfg.get<T>(key), token);
    this.log.info(`Watch ${name}: ${JSON.stringify(params)}`);
    try {
      const answer = await vscode.window.withProgress(
        { location: vscode.ProgressLocation.Window, title: `Torch Sanity: watching ${name}` },
        async (progress) => {
          watch.progress = progress;
          return client.sendRequest<{ status?: string; report?: Record<string, unknown> | null } | null>("torchsanity/watch", params);
        },
      );
      watch.ended = true;
      const report = answer?.report ?? null;
      const steps = typeof report?.steps === "number" ? report.steps : watch.step;
      this.post(watch, { type: "done", status: answer?.status ?? "finished" });
      if (report) await this.render(watch, report);
      void vscode.window.showInformationMessage(endMessage(name, answer?.status, steps, watch.verdicts));
    } catch (err) {
      watch.ended = true;
      const msg = messageOf(err);
      this.log.error(`Watch ${name} failed: ${msg}`);
      this.post(watch, { type: "done", status: "failed" });
      void vscode.window.showErrorMessage(`Torch Sanity: the watch of ${name} failed: ${msg}`);
    }
  }

  /** One handler per client for every watch's updates (a client keeps one handler per method). */
  private subscribe(client: LanguageClient): void {
    if (this.subscribed === client) return;
    this.subscription?.dispose();
    this.subscribed = client;
    this.subscription = client.onNotification(WATCH_UPDATE_NOTIFICATION, (params: unknown) => {
      const update = readWatchUpdate(params);
      const watch = update && this.watches.get(update.uri);
      if (update && watch && !watch.ended) this.update(watch, update);
    });
  }

  private update(watch: Watch, update: WatchUpdate): void {
    watch.step = update.step;
    watch.loss = update.loss;
    watch.verdicts.push(...update.verdicts);
    if (update.records.length || update.verdicts.length) this.post(watch, { type: "records", records: update.records, verdicts: update.verdicts });
    watch.progress?.report({ message: progressText(watch.step, watch.loss, watch.verdicts.length) });
    for (const v of update.verdicts) this.log.info(`Watch ${watch.name}: step ${v.step}: ${v.id}: ${v.message}`);
  }

  private post(watch: Watch, message: unknown): void {
    if (watch.pending) watch.pending.push(message);
    else void watch.panel.webview.postMessage(message);
  }

  private stop(watch: Watch): void {
    if (watch.ended) return;
    this.log.info(`Watch ${watch.name}: stop requested.`);
    void this.subscribed?.sendNotification("torchsanity/watchStop", { uri: watch.uri }).catch(() => undefined);
  }

  private webviewRoot(): vscode.Uri {
    return vscode.Uri.joinPath(this.extensionUri, "out", "webview");
  }

  private createPanel(uri: string, name: string): vscode.WebviewPanel {
    const panel = vscode.window.createWebviewPanel(
      "torchsanity.watch",
      `Watch: ${name}`,
      { viewColumn: vscode.ViewColumn.Beside, preserveFocus: true },
      // the live page keeps its charts while hidden: they are built from updates, not from one report
      { enableScripts: true, localResourceRoots: [this.webviewRoot()], retainContextWhenHidden: true, enableCommandUris: false },
    );
    panel.onDidDispose(() => {
      const watch = this.watches.get(uri);
      if (watch?.panel === panel) {
        this.stop(watch); // closing the panel stops the run
        this.watches.delete(uri);
      }
    });
    panel.webview.onDidReceiveMessage((msg: { type?: string; line?: number }) => {
      const watch = this.watches.get(uri);
      if (msg?.type === "ready" && watch?.pending) {
        const pending = watch.pending;
        watch.pending = undefined;
        for (const m of pending) void panel.webview.postMessage(m);
      } else if (msg?.type === "stop" && watch) this.stop(watch);
      else if (msg?.type === "rerun") void vscode.commands.executeCommand("torchsanity.watchTrainingRun", uri);
      else if (msg?.type === "reveal") {
        const line = Math.max(0, Number(msg.line ?? 1) - 1);
        void vscode.window.showTextDocument(vscode.Uri.parse(uri), { viewColumn: vscode.ViewColumn.One, selection: new vscode.Range(line, 0, line, 0) });
      }
    });
    return panel;
  }

  /** The live page (`report` null) or the finished report, drawn by the server for this webview. */
  private async render(watch: Watch, report: Record<string, unknown> | null): Promise<void> {
    const webview = watch.panel.webview;
    const nonce = crypto.randomBytes(16).toString("base64");
    const chartUri = webview.asWebviewUri(vscode.Uri.joinPath(this.webviewRoot(), "chart.umd.min.js")).toString();
    let html: string;
    try {
      const client = this.server.client;
      if (!client) throw new Error("the language server is not running");
      const answer = await client.sendRequest<{ html?: unknown } | null>("torchsanity/renderWatch", {
        report,
        script: vscode.Uri.parse(watch.uri).fsPath,
        nonce,
        cspSource: webview.cspSource,
        chartUri,
      });
      html = checkedPage(answer?.html, nonce, webview.cspSource);
    } catch (err) {
      html = messagePage(`The watch page of ${watch.name} could not be drawn: ${messageOf(err)}`, nonce, webview.cspSource);
    }
    if (this.watches.get(watch.uri) === watch) webview.html = html;
  }
}
