/**
 * The extension's log: one LogOutputChannel ("Torch Sanity") with levels, shared with the language client (which
 * writes the server's `window/logMessage` and, with `torchsanity.trace.server`, the protocol trace to it). The user
 * picks the level shown with "Developer: Set Log Level…".
 */
import * as vscode from "vscode";

export type Log = vscode.LogOutputChannel;

export function createLog(): Log {
  return vscode.window.createOutputChannel("Torch Sanity", { log: true });
}

/** The message of an error-ish value. */
export function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
