// Bundles the extension (out/extension.js) and, with --tests, the unit tests (out/test/*.test.js) with esbuild;
// copies the Chart.js of the server's reports to out/webview/ (the report webview's page comes from the server).
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

rmSync(join(root, "out/webview"), { recursive: true, force: true });
mkdirSync(join(root, "out/webview"), { recursive: true });
copyFileSync(join(root, "server/assets/chart.umd.min.js"), join(root, "out/webview/chart.umd.min.js"));

if (watch) {
  for (const b of builds) await (await esbuild.context(b)).watch();
  console.log("watching…");
} else {
  await Promise.all(builds.map((b) => esbuild.build(b)));
}
