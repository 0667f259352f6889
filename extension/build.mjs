// Bundles the extension (out/extension.js), the report webview script (out/webview/report.js, with chart.js),
// and, with --tests, the unit tests (out/test/*.test.js) with esbuild.
import * as esbuild from "esbuild";
import { copyFileSync, mkdirSync, readdirSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const args = new Set(process.argv.slice(2));
const watch = args.has("--watch");
const production = args.has("--production") || !watch;

const common = { bundle: true, sourcemap: !production, minify: production, logLevel: "warning", legalComments: "none" };

const builds = [
  {
    ...common,
    entryPoints: [join(root, "extension/src/extension.ts")],
    outfile: join(root, "out/extension.js"),
    platform: "node",
    format: "cjs",
    target: "node18",
    external: ["vscode"],
  },
  {
    ...common,
    entryPoints: [join(root, "extension/webview/report.ts")],
    outfile: join(root, "out/webview/report.js"),
    platform: "browser",
    format: "iife",
    target: "es2020",
  },
];

if (args.has("--tests")) {
  const dir = join(root, "tests/extension/unit");
  rmSync(join(root, "out/test"), { recursive: true, force: true });
  builds.length = 0;
  builds.push({
    bundle: true,
    sourcemap: "inline",
    logLevel: "warning",
    entryPoints: readdirSync(dir).filter((f) => f.endsWith(".test.ts")).map((f) => join(dir, f)),
    outdir: join(root, "out/test"),
    platform: "node",
    format: "cjs",
    target: "node18",
    external: ["vscode"],
  });
}

mkdirSync(join(root, "out/webview"), { recursive: true });
copyFileSync(join(root, "extension/webview/report.css"), join(root, "out/webview/report.css"));

if (watch) {
  for (const b of builds) await (await esbuild.context(b)).watch();
  console.log("watching…");
} else {
  await Promise.all(builds.map((b) => esbuild.build(b)));
}
