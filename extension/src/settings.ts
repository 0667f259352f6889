/**
 * VS Code settings (`torchsanity.*`) → what the language server receives (initializationOptions and the answer to
 * `workspace/configuration` for the `torchsanity` section), and → the params of `torchsanity/runProbe`.
 * Pure: takes a getter, so it is unit-tested without VS Code.
 */

export type Getter = <T>(key: string) => T | undefined;

export type Severity = "error" | "warning" | "information" | "hint" | "off";
const SEVERITIES: ReadonlySet<string> = new Set(["error", "warning", "information", "hint", "off"]);
const SEVERITY_ALIASES: Record<string, Severity> = {
  info: "information",
  information: "information",
  warn: "warning",
  warning: "warning",
  error: "error",
  hint: "hint",
  off: "off",
  none: "off",
  ignore: "off",
};

export interface ServerSettings {
  enable: boolean;
  select: string[];
  ignore: string[];
  /** Only error | warning | information | hint reach the server; "off" becomes an `ignore` entry. */
  severity: Record<string, Exclude<Severity, "off">>;
  run: "onType" | "onSave";
  probe: ProbeSettings;
}

export interface ProbeSettings {
  args: string[];
  checks: string[];
  timeout: number;
  device: "auto" | "cpu" | "cuda";
}

export const PROBE_CHECKS = [
  "initial-loss",
  "overfit-batch",
  "input-independence",
  "batch-independence",
  "gradient-flow",
  "determinism",
  "lr-range",
  "data-stats",
] as const;

function codes(value: unknown): string[] {
  if (!Array.isArray(value)) return [];
  const out: string[] = [];
  for (const item of value) {
    if (typeof item !== "string") continue;
    const code = item.trim().toUpperCase();
    if (/^SAN\d{0,3}$/.test(code) && !out.includes(code)) out.push(code);
  }
  return out;
}

function strings(value: unknown): string[] {
  return Array.isArray(value) ? value.filter((v): v is string => typeof v === "string") : [];
}

export function toServerSettings(get: Getter): ServerSettings {
  const severity: Record<string, Exclude<Severity, "off">> = {};
  const ignore = codes(get("ignore"));
  const rawSeverity = get<Record<string, unknown>>("severity");
  if (rawSeverity && typeof rawSeverity === "object") {
    for (const [key, value] of Object.entries(rawSeverity)) {
      const code = key.trim().toUpperCase();
      const sev = typeof value === "string" ? SEVERITY_ALIASES[value.trim().toLowerCase()] : undefined;
      if (!/^SAN\d{1,3}$/.test(code) || !sev || !SEVERITIES.has(sev)) continue;
      if (sev === "off") {
        if (!ignore.includes(code)) ignore.push(code);
      } else {
        severity[code] = sev;
      }
    }
  }
  const run = get<string>("run") === "onSave" ? "onSave" : "onType";
  return { enable: get<boolean>("enable") !== false, select: codes(get("select")), ignore, severity, run, probe: toProbeSettings(get) };
}

export function toProbeSettings(get: Getter): ProbeSettings {
  const timeoutRaw = Number(get<number>("probe.timeout"));
  const timeout = Number.isFinite(timeoutRaw) && timeoutRaw > 0 ? Math.max(5, timeoutRaw) : 300;
  const deviceRaw = get<string>("probe.device");
  const device = deviceRaw === "cpu" || deviceRaw === "cuda" ? deviceRaw : "auto";
  const checks = strings(get("probe.checks")).filter((c) => (PROBE_CHECKS as readonly string[]).includes(c));
  return { args: strings(get("probe.args")), checks, timeout, device };
}

export interface RunProbeParams {
  uri: string;
  python: string;
  args: string[];
  checks?: string[];
  timeout: number;
  device: string;
  workDoneToken?: string;
}

/** The params of the `torchsanity/runProbe` request (server contract: `{uri, checks?, args?, python?}` + extras). */
export function toRunProbeParams(uri: string, python: string, get: Getter, workDoneToken?: string): RunProbeParams {
  const probe = toProbeSettings(get);
  const params: RunProbeParams = { uri, python, args: probe.args, timeout: probe.timeout, device: probe.device };
  if (probe.checks.length) params.checks = probe.checks;
  if (workDoneToken) params.workDoneToken = workDoneToken;
  return params;
}

/** Settings whose change needs a new server process (the others reach it through didChangeConfiguration). */
export const RESTART_SETTINGS = ["torchsanity.interpreter", "torchsanity.useBundledServer"];
