/**
 * Torch Sanity for VS Code: a thin client. This file only wires the parts together: the log (log.ts), the language
 * server (server.ts, with the interpreter from python.ts), the probe command (probe.ts), the report webview
 * (reportPanel.ts), the watch command and its live webview (watch.ts) and the status bar item (status.ts). All analysis, CodeLens included, lives in the Python server.
 */
import * as vscode from "vscode";
import { createLog } from "./log";
import { ProbeRunner } from "./probe";
import { ProbeReports, ReportPanel } from "./reportPanel";
import { LanguageServer } from "./server";
import { StatusItem } from "./status";
import { WatchRunner } from "./watch";

let server: LanguageServer | undefined;

export async function activate(context: vscode.ExtensionContext): Promise<{ server: LanguageServer }> {
  const log = createLog();
  const reports = new ProbeReports(log);
  server = new LanguageServer(context, log, (params) => reports.receive(params));
  // the panel's "Run again" goes through the command, like every other way of starting a probe
  const panel = new ReportPanel(
    context.extensionUri,
    reports,
    (uri) => vscode.commands.executeCommand("torchsanity.runSanityProbe", uri),
    async (params) => {
      const client = server?.client;
      if (!client || server?.state !== "running") throw new Error("the language server is not running");
      return client.sendRequest<{ html?: unknown }>("torchsanity/renderReport", params);
    },
  );
  const probes = new ProbeRunner(server, reports, panel, log);
  const watches = new WatchRunner(context.extensionUri, server, log);
  context.subscriptions.push(
    log,
    reports,
    server,
    panel,
    probes,
    new StatusItem(server, probes, reports),
    vscode.commands.registerCommand("torchsanity.runSanityProbe", (arg?: unknown) => probes.run(arg)),
    watches,
    vscode.commands.registerCommand("torchsanity.watchTrainingRun", (arg?: unknown) => watches.run(arg)),
    vscode.commands.registerCommand("torchsanity.showProbeReport", (arg?: vscode.Uri | string) => panel.showCommand(arg)),
    vscode.commands.registerCommand("torchsanity.restartServer", () => server?.start("command")),
    vscode.commands.registerCommand("torchsanity.showOutput", () => log.show(true)),
  );
  await server.start("activation");
  return { server };
}

export async function deactivate(): Promise<void> {
  await server?.stop();
}
