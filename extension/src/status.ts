/**
 * The status bar item: the server's state, a running probe, and the verdict of the active script's latest report.
 * Clicking it shows the report (or the output when the server failed).
 */
import * as path from "path";
import * as vscode from "vscode";
import type { ProbeRunner } from "./probe";
import { overallVerdict } from "./report";
import type { ProbeReports } from "./reportPanel";
import type { LanguageServer } from "./server";

const ICONS = { starting: "$(sync~spin)", running: "$(beaker)", stopped: "$(circle-slash)", error: "$(error)" };

export class StatusItem implements vscode.Disposable {
  private readonly item: vscode.StatusBarItem;
  private readonly disposables: vscode.Disposable[];

  constructor(
    private readonly server: LanguageServer,
    private readonly probes: ProbeRunner,
    private readonly reports: ProbeReports,
  ) {
    this.item = vscode.window.createStatusBarItem("torchsanity.status", vscode.StatusBarAlignment.Left, 50);
    this.item.name = "Torch Sanity";
    const update = () => this.update();
    this.disposables = [
      this.item,
      server.onDidChange(update),
      probes.onDidChange(update),
      reports.onDidReceive(update),
      vscode.window.onDidChangeActiveTextEditor(update),
      vscode.workspace.onDidGrantWorkspaceTrust(update),
    ];
    this.update();
    this.item.show();
  }

  dispose(): void {
    for (const d of this.disposables) d.dispose();
  }

  private update(): void {
    const { state, error, interpreter } = this.server;
    const stored = this.reports.get();
    const verdict = stored ? overallVerdict(stored.report) : undefined;
    let text = `${ICONS[state]} Torch Sanity`;
    if (this.probes.running > 0) text = "$(loading~spin) Torch Sanity: probing";
    else if (verdict) text += `: ${verdict}`;
    this.item.text = text;
    this.item.tooltip = [
      `Server: ${state}${error ? ` — ${error}` : ""}`,
      interpreter ? `Interpreter: ${interpreter.path} (${interpreter.source})` : "",
      vscode.workspace.isTrusted ? "" : "Restricted Mode: static analysis only, the probe is disabled",
      stored ? `Last probe (${path.basename(String(stored.report.script ?? stored.uri))}): ${verdict}` : "No probe run yet",
    ]
      .filter(Boolean)
      .join("\n");
    this.item.backgroundColor =
      state === "error" || verdict === "fail" || verdict === "error"
        ? new vscode.ThemeColor("statusBarItem.errorBackground")
        : verdict === "warn"
          ? new vscode.ThemeColor("statusBarItem.warningBackground")
          : undefined;
    this.item.command = state === "error" ? "torchsanity.showOutput" : "torchsanity.showProbeReport";
  }
}
