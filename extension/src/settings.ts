/**
 * What the extension tells the server about the `torchsanity.*` settings. They are declared once, in package.json,
 * and forwarded as they are: the server validates them (server/lsp_settings.py for the section, the
 * `torchsanity/runProbe` parser for the probe's). The language client answers `workspace/configuration` for the
 * section itself (`synchronize.configurationSection`). Pure: takes a getter, so it is unit-tested without VS Code.
 */

export type Getter = <T>(key: string) => T | undefined;

/** `initializationOptions`: the section (for clients that answer no `workspace/configuration`) and the trust. */
export function initializationOptions(section: unknown, workspaceTrusted: boolean): { settings: unknown; workspaceTrusted: boolean } {
  return { settings: section, workspaceTrusted };
}

/** The `probe.*` settings that travel with each `torchsanity/runProbe` request, under these param names. */
const PROBE_PARAMS = ["args", "checks", "timeout", "device", "step", "batchDim", "allowMixing", "checkBudget"] as const;

/** The params of `torchsanity/runProbe`: `{uri, python, workDoneToken}` and the `probe.*` settings, unvalidated. */
export function toRunProbeParams(uri: string, python: string, get: Getter, workDoneToken: string): Record<string, unknown> {
  const params: Record<string, unknown> = { uri, python, workDoneToken };
  for (const name of PROBE_PARAMS) {
    const value = get<unknown>(`probe.${name}`);
    if (value !== undefined && value !== null) params[name] = value;
  }
  return params;
}

/** Settings whose change needs a new server process (the others reach it through didChangeConfiguration). */
export const RESTART_SETTINGS = ["torchsanity.interpreter", "torchsanity.useBundledServer"];
