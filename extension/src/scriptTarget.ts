/**
 * What the probe and the watch commands check before they run a script: a trusted workspace, a Python file to
 * run, a running language server with an interpreter. Each refusal is said to the user, once, here.
 */
import * as vscode from "vscode";
import type { LanguageClient } from "vscode-languageclient/node";
import type { Log } from "./log";
import type { ResolvedInterpreter } from "./python";
import type { LanguageServer } from "./server";

/** The script a command argument names: a Uri, a URI string, or nothing (the active editor's document). */
export function targetOf(arg: unknown): vscode.Uri | undefined {
  if (arg instanceof vscode.Uri) return arg;
  if (typeof arg === "string" && arg) return vscode.Uri.parse(arg);
  return arg === undefined ? vscode.window.activeTextEditor?.document.uri : undefined;
}

/** How one command words its refusals. */
export interface RunWords {
  /** Names the run in the log: "Probe", "Watch". */
  what: string;
  /** Shown when the workspace is not trusted. */
  restricted: string;
  /** Ends "open a Python training script (a .py file) …". */
  purpose: string;
}

export interface ScriptRun {
  target: vscode.Uri;
  client: LanguageClient;
  interpreter: ResolvedInterpreter;
}

/** The script `arg` names, with the server to run it, or undefined once the user was told why not. */
export async function scriptRun(arg: unknown, server: LanguageServer, log: Log, words: RunWords): Promise<ScriptRun | undefined> {
  if (!vscode.workspace.isTrusted) {
    log.info(`${words.what} refused: the workspace is not trusted (Restricted Mode).`);
    const choice = await vscode.window.showWarningMessage(words.restricted, "Manage Workspace Trust");
    if (choice) void vscode.commands.executeCommand("workbench.trust.manage");
    return undefined;
  }
  const target = targetOf(arg);
  if (!target || target.scheme !== "file" || !target.fsPath.endsWith(".py")) {
    void vscode.window.showWarningMessage(`Torch Sanity: open a Python training script (a .py file) ${words.purpose}.`);
    return undefined;
  }
  const { client, interpreter } = server;
  if (!client || server.state !== "running" || !interpreter) {
    const why = server.error ? ` (${server.error})` : "";
    void vscode.window.showErrorMessage(`Torch Sanity: the language server is not running${why}.`);
    return undefined;
  }
  return { target, client, interpreter };
}
