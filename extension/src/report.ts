/**
 * The probe report as the extension sees it: the messages that carry one, its verdict (status bar, log), and the
 * webview page. The page is drawn by the server (`torchsanity/renderReport`, the renderer the CLI's HTML file
 * comes from: server/probe_report.py); the extension only checks that the page it got carries the strict
 * Content-Security-Policy with its nonce. Pure: no vscode import, so it is unit-tested from JSON.
 *
 * Report contract: probes/report.py.
 */

export type Status = "pass" | "warn" | "fail" | "skip" | "error";

export interface ProbeCheck {
  id: string;
  status: Status | string;
  measured?: unknown;
  expected?: unknown;
  message?: string;
  line?: number | null;
  series?: unknown;
  [key: string]: unknown;
}

export interface ProbeReport {
  script?: string;
  device?: string;
  checks?: ProbeCheck[];
  verdict?: string;
  status?: string;
  error?: unknown;
  traceback?: string;
  duration?: number;
  duration_s?: number;
  [key: string]: unknown;
}

const ORDER: Status[] = ["error", "fail", "warn", "pass", "skip"];

/** The overall verdict: the worst check status (error > fail > warn > pass > skip). */
export function overallVerdict(report: ProbeReport): Status {
  const explicit = (report.verdict ?? report.status) as string | undefined;
  if (explicit && (ORDER as string[]).includes(explicit)) return explicit as Status;
  const statuses = (report.checks ?? []).map((c) => String(c.status));
  if (report.error && !statuses.length) return "error";
  for (const s of ["error", "fail", "warn", "pass"] as Status[]) if (statuses.includes(s)) return s;
  return statuses.length ? "skip" : "error";
}

/** A report-carrying message: `torchsanity/probeReport` or the `torchsanity/runProbe` answer. */
export interface ReportMessage {
  uri?: string;
  status?: string;
  report?: ProbeReport;
}

/**
 * Reads `{uri, status, exitCode, report}` (the server's contract; `report` may be null when none was made) or a
 * bare report (one with `checks` or an `error`). Without a `uri`, the report's `script` path gives it.
 */
export function readReportMessage(params: unknown, fileUri: (path: string) => string): ReportMessage {
  const p = (params && typeof params === "object" ? params : {}) as { uri?: unknown; status?: unknown; report?: unknown; checks?: unknown; error?: unknown };
  const bare = !("report" in p) && (Array.isArray(p.checks) || p.error !== undefined);
  const report = bare ? (p as ProbeReport) : p.report && typeof p.report === "object" ? (p.report as ProbeReport) : undefined;
  let uri = typeof p.uri === "string" ? p.uri : undefined;
  if (!uri && typeof report?.script === "string") uri = fileUri(report.script);
  return { uri, status: typeof p.status === "string" ? p.status : undefined, report };
}

/** The params of `torchsanity/renderReport`: the report, and how the webview loads resources. */
export interface RenderParams {
  report: ProbeReport;
  nonce: string;
  cspSource: string;
  chartUri: string;
}

/** The Content-Security-Policy every webview page must carry: nothing remote, scripts and styles by nonce. */
export function contentSecurityPolicy(nonce: string, cspSource: string): string {
  return [
    "default-src 'none'",
    `img-src ${cspSource} data:`,
    `style-src ${cspSource} 'nonce-${nonce}'`,
    `font-src ${cspSource}`,
    `script-src 'nonce-${nonce}'`,
    "connect-src 'none'",
    "form-action 'none'",
    "frame-src 'none'",
    "base-uri 'none'",
  ].join("; ");
}

/**
 * The server's page, if it carries exactly the policy this webview asked for (as its first `<meta>` in `<head>`)
 * and every script element has the nonce; else a page that says what went wrong.
 */
export function checkedPage(html: unknown, nonce: string, cspSource: string): string {
  const policy = contentSecurityPolicy(nonce, cspSource);
  const page = typeof html === "string" ? html : "";
  const head = page.slice(0, page.indexOf("</head>") + 1);
  const metas = head.match(/<meta http-equiv="Content-Security-Policy"[^>]*>/g) ?? [];
  const scripts = page.match(/<script\b[^>]*>/g) ?? [];
  const ok =
    metas.length === 1 &&
    metas[0] === `<meta http-equiv="Content-Security-Policy" content="${policy}">` &&
    !/<(script|style|link)\b/.test(head.slice(0, head.indexOf(metas[0]))) &&
    scripts.every((tag) => tag.includes(`nonce="${escapeHtml(nonce)}"`) || tag.includes('type="application/json"'));
  return ok ? page : messagePage("The probe report could not be shown: the page from the server is not one this view accepts.", nonce, cspSource);
}

/** A page with one message (no report yet, the server is not running, …), under the same policy. */
export function messagePage(message: string, nonce: string, cspSource: string): string {
  return `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="${contentSecurityPolicy(nonce, cspSource)}">
</head><body><p id="message">${escapeHtml(message)}</p></body></html>`;
}

export function escapeHtml(value: string): string {
  return value
    .replace(/&/g, "&amp;")
    .replace(/</g, "&lt;")
    .replace(/>/g, "&gt;")
    .replace(/"/g, "&quot;")
    .replace(/'/g, "&#39;");
}
