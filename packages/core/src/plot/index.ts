/**
 * `@chimera/core/plot`: PNG charts of training metrics. A separate entry because it is Node-only (files, a native
 * SVG rasteriser) and heavy (Vega); the main entry stays free of it so it can bundle for the browser.
 *
 * @packageDocumentation
 */
export { plotMetrics, RUN_COLORS, type MetricsRun, type PlotMetricsOptions, type MetricsChart, type PlotMetricsResult } from './plot-metrics';
