// A multi-series line chart drawn as SVG at the container's pixel width (scaling one
// fixed drawing would shrink its text to nothing on a phone). Redrawn when resized.

import { num, s } from './dom.js';

// Hues of the Okabe-Ito set, darkened or lightened so that each line has 3:1 against
// the page and the panels in the light and the dark scheme (WCAG 1.4.11).
export const PALETTE = ['#2563eb', '#b86200', '#00876a', '#b5509a', '#d0440f',
  '#1f82bf', '#8b5cf6', '#877300', '#64748b', '#0e8a80'];

/**
 * Draws into `el`: `dates` are the x values (`YYYY-MM-DD`), each series
 * `{ name, color, values, title(i) }` has one value per date. `partialLast`: the last
 * date is not over yet.
 */
export function lineChart(el, { dates, series, label, partialLast = false }) {
  el.chartData = { dates, series, label, partialLast };
  if (!el.chartObserver) {
    let width = 0;
    el.chartObserver = new ResizeObserver(() => {
      if (el.clientWidth !== width) {
        width = el.clientWidth;
        draw(el, el.chartData);
      }
    });
    el.chartObserver.observe(el);
  }
  draw(el, el.chartData);
}

function draw(el, { dates, series, label, partialLast }) {
  const W = Math.max(260, el.clientWidth || 600);
  const H = W < 500 ? 200 : 240;
  const m = { top: 10, right: 12, bottom: 24, left: 48 };
  const pw = W - m.left - m.right;
  const ph = H - m.top - m.bottom;
  const all = series.flatMap((x) => x.values);
  const { lo, hi, ticks } = scale(Math.min(0, ...all), Math.max(0, ...all));
  const x = (i) => m.left + (dates.length === 1 ? pw / 2 : (i * pw) / (dates.length - 1));
  const y = (v) => m.top + ph - ((v - lo) / (hi - lo)) * ph;

  const grid = ticks.map((t) => s('g', { class: t === 0 ? 'tick zero' : 'tick' },
    s('line', { x1: m.left, x2: W - m.right, y1: y(t), y2: y(t) }),
    s('text', { x: m.left - 6, y: y(t), 'text-anchor': 'end', 'dominant-baseline': 'middle', text: num(t) })));
  // Enough room between date labels for `MM-DD`.
  const every = Math.ceil(dates.length / Math.max(2, Math.floor(pw / 52)));
  const xLabels = dates.map((d, i) => ((dates.length - 1 - i) % every === 0
    ? s('text', { class: 'date', x: x(i), y: H - 6, 'text-anchor': 'middle', text: d.slice(5) })
    : null));
  const path = (values, from) => values
    .map((v, i) => `${i ? 'L' : 'M'}${x(from + i).toFixed(1)},${y(v).toFixed(1)}`).join('');
  // A day still under way is drawn dashed, so its low count does not read as a drop.
  const solid = partialLast && dates.length > 1 ? dates.length - 1 : dates.length;
  const lines = series.map((sr) => s('g', { class: 'series', 'data-type': sr.name },
    s('path', { d: path(sr.values.slice(0, solid), 0), stroke: sr.color }),
    solid < dates.length
      ? s('path', { class: 'partial', d: path(sr.values.slice(solid - 1), solid - 1), stroke: sr.color })
      : null,
    sr.values.map((v, i) => s('circle', { cx: x(i), cy: y(v), r: dates.length > 60 ? 1.5 : 3, fill: sr.color },
      s('title', { text: sr.title(i) })))));

  el.replaceChildren(s('svg', {
    class: 'chart', width: W, height: H, viewBox: `0 0 ${W} ${H}`, role: 'img',
    'aria-label': `${label}: ${series.length} event types, ${dates[0]} to ${dates[dates.length - 1]}`,
  }, grid, xLabels, lines));
}

/** A domain from `lo` to `hi` widened to round ticks, about five of them. */
function scale(lo, hi) {
  if (lo === hi) hi = lo + 1;
  const raw = (hi - lo) / 4;
  const mag = 10 ** Math.floor(Math.log10(raw));
  // Counts and points are whole numbers: no fractional ticks.
  const step = Math.max(1, [1, 2, 5, 10].map((k) => k * mag).find((v) => v >= raw));
  const start = Math.floor(lo / step) * step;
  const end = Math.ceil(hi / step) * step;
  const ticks = [];
  for (let t = start; t <= end; t += step) ticks.push(t);
  return { lo: start, hi: end, ticks };
}
