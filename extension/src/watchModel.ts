/**
 * The extension's side of `torchsanity/watch`, without VS Code: the request's params, the reading of the server's
 * `torchsanity/watchUpdate` notifications, and the status text. Pure, so it is unit-tested from JSON.
 */
import type { Getter } from "./settings";

/** A `torchsanity/watchUpdate` notification, read defensively. */
export interface WatchUpdate {
  uri: string;
  records: Record<string, unknown>[];
  verdicts: Verdict[];
  step: number;
  loss: number | string | null;
  done: boolean;
  status?: string;
}

export interface Verdict {
  id: string;
  step: number;
  message: string;
  advice?: string;
  criterion?: string;
}

/** The params of `torchsanity/watch`: the script, the interpreter, the token, and the probe's `args` and `device`
 * settings (the script's arguments and where it runs are the same for both); unvalidated (the server validates). */
export function toWatchParams(uri: string, python: string, get: Getter, workDoneToken: string): Record<string, unknown> {
  const params: Record<string, unknown> = { uri, python, workDoneToken };
  for (const name of ["args", "device"]) {
    const value = get<unknown>(`probe.${name}`);
    if (value !== undefined && value !== null) params[name] = value;
  }
  return params;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return !!v && typeof v === "object" && !Array.isArray(v);
}

/** A notification's params as a `WatchUpdate`, or undefined when it is not one (no `uri`). */
export function readWatchUpdate(params: unknown): WatchUpdate | undefined {
  if (!isRecord(params) || typeof params.uri !== "string" || !params.uri) return undefined;
  const records = Array.isArray(params.records) ? params.records.filter(isRecord) : [];
  const verdicts = (Array.isArray(params.verdicts) ? params.verdicts : [])
    .filter(isRecord)
    .filter((v) => typeof v.id === "string" && typeof v.step === "number")
    .map((v) => ({
      id: String(v.id),
      step: Number(v.step),
      message: String(v.message ?? ""),
      advice: typeof v.advice === "string" ? v.advice : undefined,
      criterion: typeof v.criterion === "string" ? v.criterion : undefined,
    }));
  const loss = typeof params.loss === "number" || typeof params.loss === "string" ? params.loss : null;
  return {
    uri: params.uri,
    records,
    verdicts,
    step: typeof params.step === "number" ? params.step : 0,
    loss,
    done: params.done === true,
    status: typeof params.status === "string" ? params.status : undefined,
  };
}

/** "step 120 · loss 0.0381 · 1 verdict(s)": the progress line of a running watch. */
export function progressText(step: number, loss: number | string | null, verdicts: number): string {
  const l = typeof loss === "number" ? String(Number(loss.toPrecision(4))) : loss ?? "—";
  return `step ${step} · loss ${l}` + (verdicts ? ` · ${verdicts} verdict(s)` : "");
}

/** The message shown when a watch ends. */
export function endMessage(name: string, status: string | undefined, steps: number, verdicts: Verdict[]): string {
  const what = status === "stopped" ? "stopped" : status === "superseded" ? "replaced by a newer watch" : "finished";
  const found = verdicts.length ? `${verdicts.length} verdict(s): ${[...new Set(verdicts.map((v) => v.id))].join(", ")}` : "no verdicts";
  return `Torch Sanity: watch of ${name} ${what} after ${steps} step(s), ${found}.`;
}
