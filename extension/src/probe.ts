/**
 * The "Run Sanity Probe" command: sends `torchsanity/runProbe` for a script, shows cancellable progress (from the
 * server's `$/progress`), and opens the report. Its argument is the script's URI (a `vscode.Uri` from menus, a
 * string from the server's CodeLens), else the active editor's file.
 */
import * as path from "path";
import * as vscode from "vscode";
import { WorkDoneProgress, WorkDoneProgressCancelNotification } from "vscode-languageclient/node";
import { messageOf, type Log } from "./log";
import { readReportMessage, type ReportMessage } from "./report";
import { fileUri, type ProbeReports, type ReportPanel } from "./reportPanel";
import { scriptRun } from "./scriptTarget";
import type { LanguageServer } from "./server";
import { toRunProbeParams, type Getter } from "./settings";

export const RESTRICTED_MESSAGE =
  "Torch Sanity: the sanity probe runs your training script, so it is disabled in Restricted Mode. " +
  "Static analysis still works. Trust this workspace to run the probe.";

/** How long to wait for the report notification after a `runProbe` answer that carried none. */
const REPORT_GRACE_MS = 10000;

function settingsOf(scope: vscode.Uri): Getter {
  const cfg = vscode.workspace.getConfiguration("torchsanity", scope);
  return <T>(key: string) => cfg.get<T>(key);
}

export class ProbeRunner implements vscode.Disposable {
  private readonly inFlight = new Set<string>();
  private readonly changed = new vscode.EventEmitter<void>();
  /** Fires when a probe starts or ends. */
  readonly onDidChange = this.changed.event;
  private counter = 0;

  constructor(
    private readonly server: LanguageServer,
    private readonly reports: ProbeReports,
    private readonly panel: ReportPanel,
    private readonly log: Log,
  ) {}

  get running(): number {
    return this.inFlight.size;
  }

  dispose(): void {
    this.changed.dispose();
  }

  async run(arg?: unknown): Promise<void> {
    const run = await scriptRun(arg, this.server, this.log,
      { what: "Probe", restricted: RESTRICTED_MESSAGE, purpose: "to run the sanity probe" });
    if (!run) return;
    const { target, client, interpreter } = run;
    const doc = vscode.workspace.textDocuments.find((d) => d.uri.toString() === target.toString());
    if (doc?.isDirty) await doc.save();
    const uri = target.toString();
    if (this.inFlight.has(uri)) {
      void vscode.window.showInformationMessage("Torch Sanity: a probe of this script is already running.");
      return;
    }
    const name = path.basename(target.fsPath);
    const token = `torchsanity-probe-${process.pid}-${++this.counter}`;
    const params = toRunProbeParams(uri, interpreter.path, settingsOf(target), token);
    this.log.info(`Probe ${name}: ${JSON.stringify(params)}`);
    this.inFlight.add(uri);
    this.changed.fire();
    let cancelled = false;
    try {
      const message = await vscode.window.withProgress(
        { location: vscode.ProgressLocation.Notification, title: `Torch Sanity: probing ${name}`, cancellable: true },
        async (progress, cancelToken) => {
          let lastPct = 0;
          const progressSub = client.onProgress(WorkDoneProgress.type, token, (value) => {
            if (value.kind === "end") return;
            const pct = typeof value.percentage === "number" ? value.percentage : undefined;
            const increment = pct !== undefined && pct > lastPct ? pct - lastPct : undefined;
            if (pct !== undefined) lastPct = Math.max(lastPct, pct);
            progress.report({ message: value.kind === "begin" ? value.message ?? value.title : value.message, increment });
          });
          const cancelSub = cancelToken.onCancellationRequested(() => {
            cancelled = true;
            this.log.info(`Probe ${name}: cancelled by the user.`);
            // both ways the LSP offers: the work-done token, and $/cancelRequest (sendRequest's token below)
            void client.sendNotification(WorkDoneProgressCancelNotification.type, { token }).catch(() => undefined);
          });
          let reportSub: vscode.Disposable | undefined;
          let notifiedReport = false;
          const notified = new Promise<ReportMessage>((resolve) => {
            reportSub = this.reports.onDidReceive((m) => {
              if (m.uri !== uri) return;
              notifiedReport ||= m.report !== undefined;
              resolve(m);
            });
          });
          try {
            const result = await client.sendRequest<object | null>("torchsanity/runProbe", params, cancelToken);
            const answer = readReportMessage({ uri, ...(result ?? {}) }, fileUri);
            if (answer.report && !notifiedReport) this.reports.accept(answer); // else the notification brought it
            if (answer.report || answer.status === "cancelled" || answer.status === "superseded") return answer;
            const late = delay(REPORT_GRACE_MS).then((): ReportMessage => ({ uri }));
            return await Promise.race([notified, late]);
          } finally {
            reportSub?.dispose();
            progressSub.dispose();
            cancelSub.dispose();
          }
        },
      );
      cancelled ||= message.status === "cancelled";
      if (cancelled) {
        void vscode.window.showInformationMessage(`Torch Sanity: probe of ${name} cancelled.`);
      } else if (message.status === "superseded") {
        this.log.info(`Probe ${name}: superseded by a newer run.`);
      } else if (!message.report) {
        void vscode.window.showWarningMessage(`Torch Sanity: the probe of ${name} finished without a report; see the output.`);
      } else if (settingsOf(target)<boolean>("probe.openReport") !== false) {
        const stored = this.reports.get(uri);
        if (stored) this.panel.show(stored);
      }
    } catch (err) {
      if (cancelled) {
        void vscode.window.showInformationMessage(`Torch Sanity: probe of ${name} cancelled.`);
      } else {
        const msg = messageOf(err);
        this.log.error(`Probe ${name} failed: ${msg}`);
        void vscode.window.showErrorMessage(`Torch Sanity: the probe of ${name} failed: ${msg}`, "Show Output").then((c) => {
          if (c) this.log.show(true);
        });
      }
    } finally {
      this.inFlight.delete(uri);
      this.changed.fire();
    }
  }
}

function delay(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
