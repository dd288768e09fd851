/**
 * A time-series chart (uPlot), sized from its container (ResizeObserver, so it fits a 360 px screen), named by a
 * <figure>/<figcaption>, with a visually hidden summary and table of its values for screen readers (the canvas itself
 * is hidden from them). Only the pages that chart import this module, so uPlot and its CSS load with those pages
 * (their lazy chunks), never with the console's first load. uPlot sets its styles through the CSSOM, which the CSP
 * (style-src 'self') allows.
 */
import { useEffect, useId, useMemo, useRef, useState } from "react";
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import type { ChartData } from "./ops-lib";

/** Distinct hues that read on light and dark panels; series also differ by dash pattern, not by color alone. */
const PALETTE = ["", "#d1495b", "#1d8a4a", "#c77d00", "#7b3fb5", "#008b8b", "#8a6d3b", "#d4489b"];
const DASHES: (number[] | undefined)[] = [undefined, [8, 4], [2, 3], [10, 3, 2, 3], [4, 4], [1, 5]];
const MAX_TABLE_ROWS = 60;

const canDraw = () => {
  try {
    return typeof document !== "undefined" && !!document.createElement("canvas").getContext?.("2d");
  } catch {
    return false;
  }
};

const defaultFormat = (v: number) => new Intl.NumberFormat(undefined, { maximumFractionDigits: 2 }).format(v);

export interface ChartProps {
  /** The figure's caption: its accessible name. */
  title: string;
  data: ChartData;
  /** What the y axis counts (shown on the axis and in the table). */
  unit?: string;
  height?: number;
  format?: (v: number) => string;
  /** What the chart is empty of. */
  emptyText?: string;
  /** Seconds between points (e.g. the usage interval): a lone point is drawn with this much room on each side. */
  step?: number;
}

export function Chart({ title, data, unit, height = 220, format = defaultFormat, emptyText = "No data points yet.", step = 3600 }: ChartProps) {
  const id = useId();
  const box = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  const [failed, setFailed] = useState(false);
  const xs = useRef(data.x);
  xs.current = data.x;
  const labels = data.series.map((s) => s.label).join("\u0000");
  const aligned = useMemo(() => [data.x, ...data.series.map((s) => s.values)] as uPlot.AlignedData, [data]);
  const empty = data.x.length === 0 || data.series.length === 0;

  // (Re)build the plot when its series change; its data is replaced in place below.
  useEffect(() => {
    const el = box.current;
    if (!el || empty || !canDraw()) return;
    const css = getComputedStyle(el);
    const fg = css.color || "#555";
    const grid = css.getPropertyValue("--line").trim() || "rgba(128,128,128,0.3)";
    const accent = css.getPropertyValue("--accent").trim() || "#2a4dd0";
    let u: uPlot;
    try {
      u = new uPlot(
        {
          width: Math.max(200, el.clientWidth || 300),
          height,
          scales: {
            x: {
              time: true,
              // uPlot widens a lone time point by 86400 / ms (about 2.7 years with seconds): give it `step` each side.
              range: (_u, min, max) => (xs.current.length === 1 ? [xs.current[0] - step, xs.current[0] + step] : [min, max]),
            },
          },
          series: [
            { label: "Time" },
            ...data.series.map((s, i) => ({
              label: s.label,
              stroke: PALETTE[i % PALETTE.length] || accent,
              width: 2,
              dash: DASHES[i % DASHES.length],
              spanGaps: true,
              points: { show: data.x.length <= 48 },
              value: (_: uPlot, v: number | null) => (v === null || v === undefined ? "—" : format(v)),
            })),
          ],
          axes: [
            { stroke: fg, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid, width: 1 } },
            {
              stroke: fg,
              grid: { stroke: grid, width: 1 },
              ticks: { stroke: grid, width: 1 },
              label: unit,
              size: 64,
              values: (_u, vals) => vals.map((v) => format(v)),
            },
          ],
          legend: { show: true },
        },
        aligned,
        el,
      );
    } catch {
      setFailed(true);
      return;
    }
    plot.current = u;
    const ro =
      typeof ResizeObserver === "function"
        ? new ResizeObserver((entries) => {
            const w = Math.floor(entries[0]?.contentRect.width ?? 0);
            if (w > 0 && Math.abs(w - u.width) > 1) u.setSize({ width: w, height });
          })
        : null;
    ro?.observe(el);
    return () => {
      ro?.disconnect();
      u.destroy();
      plot.current = null;
    };
  }, [labels, height, unit, empty, step]);

  useEffect(() => {
    plot.current?.setData(aligned);
  }, [aligned]);

  const rows = data.x.length > MAX_TABLE_ROWS ? data.x.slice(-MAX_TABLE_ROWS) : data.x;
  const offset = data.x.length - rows.length;
  return (
    <figure className="chart-figure" aria-labelledby={`${id}-caption`}>
      <figcaption id={`${id}-caption`}>{title}</figcaption>
      {empty ? (
        <p className="muted">{emptyText}</p>
      ) : (
        <>
          <div ref={box} className="chart" aria-hidden="true" />
          {failed ? <p className="muted">The chart could not be drawn here; the values are in the table below.</p> : null}
          <p className="sr-only">{summarize(data, unit, format)}</p>
          {/* A table ignores width: 1px, so the visually hidden box is a div around it. */}
          <div className={failed ? "chart-values" : "sr-only"}>
            <table>
              <caption>
                {title}: values{offset ? ` (the latest ${rows.length} of ${data.x.length})` : ""}
              </caption>
              <thead>
                <tr>
                  <th scope="col">Time</th>
                  {data.series.map((s) => (
                    <th scope="col" key={s.label}>
                      {s.label}
                      {unit ? ` (${unit})` : ""}
                    </th>
                  ))}
                </tr>
              </thead>
              <tbody>
                {rows.map((x, i) => (
                  <tr key={x}>
                    <th scope="row">{new Date(x * 1000).toLocaleString()}</th>
                    {data.series.map((s) => {
                      const v = s.values[i + offset];
                      return <td key={s.label}>{v === null || v === undefined ? "—" : format(v)}</td>;
                    })}
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        </>
      )}
    </figure>
  );
}

/** One sentence per series: its latest value, and its range. */
export function summarize(data: ChartData, unit: string | undefined, format: (v: number) => string = defaultFormat): string {
  const u = unit ? ` ${unit}` : "";
  return data.series
    .map((s) => {
      const vals = s.values.filter((v): v is number => v !== null && v !== undefined);
      if (!vals.length) return `${s.label}: no values.`;
      return `${s.label}: latest ${format(vals[vals.length - 1])}${u}, lowest ${format(Math.min(...vals))}${u}, highest ${format(Math.max(...vals))}${u}.`;
    })
    .join(" ");
}
