/* Runs inside the probe report webview (bundled with chart.js by esbuild; no network, CSP nonce). */
import {
  BarController,
  BarElement,
  CategoryScale,
  Chart,
  Legend,
  LinearScale,
  LineController,
  LineElement,
  LogarithmicScale,
  PointElement,
  Title,
  Tooltip,
  type ChartConfiguration,
} from "chart.js";
import { chartSpecs, type ChartSpec, type ProbeReport } from "../src/report";

Chart.register(BarController, BarElement, CategoryScale, Legend, LinearScale, LineController, LineElement, LogarithmicScale, PointElement, Title, Tooltip);

declare function acquireVsCodeApi(): { postMessage(message: unknown): void };
const vscode = acquireVsCodeApi();

const PALETTE = ["#3794ff", "#f14c4c", "#89d185", "#cca700", "#b180d7", "#4ec9b0", "#ce9178", "#d7ba7d"];

function cssVar(name: string, fallback: string): string {
  const v = getComputedStyle(document.body).getPropertyValue(name).trim();
  return v || fallback;
}

function configFor(spec: ChartSpec): ChartConfiguration {
  const fg = cssVar("--vscode-editor-foreground", "#cccccc");
  const grid = cssVar("--vscode-editorWidget-border", "rgba(128,128,128,0.25)");
  const xy = spec.type === "line" && !spec.labels;
  const datasets = spec.datasets.map((d, i) => ({
    label: d.label,
    data: d.data as never,
    borderColor: PALETTE[i % PALETTE.length],
    backgroundColor: PALETTE[i % PALETTE.length] + (spec.type === "bar" ? "cc" : "33"),
    borderWidth: spec.type === "bar" ? 0 : 2,
    pointRadius: 0,
    tension: 0,
    spanGaps: true,
  }));
  if (spec.markerX !== undefined && xy) {
    const ys = spec.datasets.flatMap((d) => (d.data as { x: number; y: number }[]).map((p) => p.y)).filter(Number.isFinite);
    if (ys.length) {
      datasets.push({
        label: "suggested LR",
        data: [{ x: spec.markerX, y: Math.min(...ys) }, { x: spec.markerX, y: Math.max(...ys) }] as never,
        borderColor: "#cca700",
        backgroundColor: "#cca700",
        borderWidth: 1,
        pointRadius: 0,
        tension: 0,
        spanGaps: true,
      });
    }
  }
  const axis = (title: string, log?: boolean, linear?: boolean) => ({
    type: log ? ("logarithmic" as const) : linear ? ("linear" as const) : ("category" as const),
    title: { display: true, text: title, color: fg },
    ticks: log
      ? {
          color: fg,
          autoSkip: false,
          maxRotation: 0,
          // only the powers of ten, as 1e-4 rather than 0.0001
          callback: (value: number | string) => {
            const v = Number(value);
            const e = Math.log10(v);
            return Math.abs(e - Math.round(e)) < 1e-9 ? `1e${Math.round(e)}` : "";
          },
        }
      : { color: fg, maxRotation: 0, autoSkip: true },
    grid: { color: grid },
  });
  return {
    type: spec.type,
    data: { labels: spec.labels, datasets },
    options: {
      animation: false,
      responsive: true,
      maintainAspectRatio: false,
      parsing: xy ? false : undefined,
      plugins: { legend: { labels: { color: fg } }, title: { display: false } },
      scales: {
        x: axis(spec.xLabel, spec.xLog, xy),
        y: { ...axis(spec.yLabel, spec.yLog, true) },
      },
    },
  } as ChartConfiguration;
}

function main(): void {
  const el = document.getElementById("report-data");
  const report = JSON.parse(el?.textContent || "{}") as ProbeReport;
  const checks = report.checks ?? [];
  document.querySelectorAll<HTMLCanvasElement>("canvas[data-check-index]").forEach((canvas) => {
    const check = checks[Number(canvas.dataset.checkIndex)];
    const spec = check ? chartSpecs(check)[Number(canvas.dataset.specIndex)] : undefined;
    if (!spec) return;
    try {
      new Chart(canvas, configFor(spec));
    } catch (err) {
      canvas.replaceWith(document.createTextNode(`(chart failed: ${String(err)})`));
    }
  });
  document.body.dataset.chartsReady = "true";
  document.querySelectorAll<HTMLAnchorElement>("a.line").forEach((a) =>
    a.addEventListener("click", (ev) => {
      ev.preventDefault();
      vscode.postMessage({ type: "reveal", line: Number(a.dataset.line) });
    }),
  );
  document.getElementById("rerun")?.addEventListener("click", () => vscode.postMessage({ type: "rerun" }));
  document.getElementById("open-script")?.addEventListener("click", () => vscode.postMessage({ type: "reveal", line: 0 }));
}

main();
