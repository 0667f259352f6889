/**
 * Probe reports: the latest one per script (from `torchsanity/probeReport` and the `torchsanity/runProbe` answers),
 * and the webview that shows one. The page is drawn by the server (`torchsanity/renderReport`: the renderer of the
 * CLI's HTML report) with this webview's nonce and its local Chart.js; report.ts checks its policy.
 */
import * as crypto from "crypto";
import * as path from "path";
import * as vscode from "vscode";
import type { Log } from "./log";
import { checkedPage, messagePage, overallVerdict, readReportMessage, type ProbeReport, type RenderParams, type ReportMessage } from "./report";

/** Sends `torchsanity/renderReport` and answers the page (`{html}`); rejects when the server cannot. */
export type RenderReport = (params: RenderParams) => Promise<{ html?: unknown } | null | undefined>;

/** The `file:` URI string of a path. */
export function fileUri(p: string): string {
  return vscode.Uri.file(p).toString();
}

export interface StoredReport {
  report: ProbeReport;
  uri: string;
  receivedAt: Date;
}

/** The latest report of each script, and an event for every report message (with or without a report). */
export class ProbeReports implements vscode.Disposable {
  private readonly byUri = new Map<string, StoredReport>();
  last: StoredReport | undefined;
  private readonly received = new vscode.EventEmitter<ReportMessage>();
  readonly onDidReceive = this.received.event;

  constructor(private readonly log: Log) {}

  /** Takes a `torchsanity/probeReport` notification (or a `torchsanity/runProbe` answer). */
  receive(params: unknown): void {
    this.accept(readReportMessage(params, fileUri));
  }

  /** Keeps the message's report (if any) as its script's latest, and tells the listeners. */
  accept(message: ReportMessage): void {
    const { uri, report, status } = message;
    if (uri && report) {
      const stored = { report, uri, receivedAt: new Date() };
      this.byUri.set(uri, stored);
      this.last = stored;
      this.log.info(`Probe report for ${uri}: ${overallVerdict(report)}${status ? ` (${status})` : ""}.`);
    } else if (!report) {
      this.log.info(`Probe ${uri ?? ""}: ${status ?? "no report"}.`);
    }
    this.received.fire(message);
  }

  /** The report of `uri`; without one, of the active editor's script, else the latest. */
  get(uri?: string): StoredReport | undefined {
    if (uri) return this.byUri.get(uri);
    const active = vscode.window.activeTextEditor?.document.uri.toString();
    return (active && this.byUri.get(active)) || this.last;
  }

  dispose(): void {
    this.received.dispose();
  }
}

/** The "Probe Report" webview: one panel, showing one script's report, re-rendered when a new one arrives. */
export class ReportPanel implements vscode.Disposable {
  private panel: vscode.WebviewPanel | undefined;
  private panelUri: string | undefined;
  private renders = 0;
  private readonly subscription: vscode.Disposable;

  constructor(
    private readonly extensionUri: vscode.Uri,
    private readonly reports: ProbeReports,
    private readonly runProbe: (uri: string) => unknown,
    private readonly renderReport: RenderReport,
  ) {
    this.subscription = reports.onDidReceive(({ uri }) => {
      const stored = uri === this.panelUri ? reports.get(uri) : undefined;
      if (this.panel && stored) void this.render(stored);
    });
  }

  /** The "Show Probe Report" command: the report of `arg` (a URI), else of the active editor, else the latest. */
  async showCommand(arg?: vscode.Uri | string): Promise<void> {
    const uri = typeof arg === "string" ? arg : arg?.toString();
    const stored = this.reports.get(uri);
    if (stored) {
      this.show(stored);
      return;
    }
    const choice = await vscode.window.showInformationMessage(
      "Torch Sanity: no probe report yet. Run the sanity probe on a training script first.",
      "Run Sanity Probe",
    );
    const target = uri ?? vscode.window.activeTextEditor?.document.uri.toString();
    if (choice && target) await this.runProbe(target);
  }

  show(stored: StoredReport): void {
    if (this.panel) this.panel.reveal(undefined, true);
    void this.render(stored);
  }

  dispose(): void {
    this.subscription.dispose();
    this.panel?.dispose();
  }

  private webviewRoot(): vscode.Uri {
    return vscode.Uri.joinPath(this.extensionUri, "out", "webview");
  }

  private createPanel(): vscode.WebviewPanel {
    const panel = vscode.window.createWebviewPanel(
      "torchsanity.probeReport",
      "Probe Report",
      { viewColumn: vscode.ViewColumn.Beside, preserveFocus: true },
      { enableScripts: true, localResourceRoots: [this.webviewRoot()], retainContextWhenHidden: false, enableCommandUris: false },
    );
    panel.onDidDispose(() => (this.panel = undefined));
    panel.webview.onDidReceiveMessage((msg: { type?: string; line?: number }) => {
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
    return panel;
  }

  private async render(stored: StoredReport): Promise<void> {
    this.panel ??= this.createPanel();
    this.panelUri = stored.uri;
    const panel = this.panel;
    const webview = panel.webview;
    const name = stored.report.script ? path.basename(String(stored.report.script)) : "script";
    panel.title = `Probe Report: ${name}`;
    const nonce = crypto.randomBytes(16).toString("base64");
    const chartUri = webview.asWebviewUri(vscode.Uri.joinPath(this.webviewRoot(), "chart.umd.min.js")).toString();
    const render = ++this.renders;
    let html: string;
    try {
      const answer = await this.renderReport({ report: stored.report, nonce, cspSource: webview.cspSource, chartUri });
      html = checkedPage(answer?.html, nonce, webview.cspSource);
    } catch (err) {
      const why = err instanceof Error ? err.message : String(err);
      html = messagePage(`The probe report of ${name} could not be drawn: ${why}`, nonce, webview.cspSource);
    }
    if (render === this.renders && this.panel === panel) webview.html = html; // a newer render wins
  }
}
