// Events and points per event type and day (GET /v1/stats/daily), one line per type
// that has events in the window, and the window's totals by type.

import { get } from './api.js';
import { PALETTE, lineChart } from './chart.js';
import { barCell, h, num, table, utcDate } from './dom.js';

const SPANS = [['7', '7 days'], ['30', '30 days'], ['90', '90 days'], ['365', '365 days']];

export function mount(root, ctx) {
  const days = h('select', { name: 'days' }, SPANS.map(([v, t]) => h('option', { value: v, text: t })));
  const end = h('input', { type: 'date', name: 'end' });
  const caption = h('h2', { class: 'caption' });
  const body = h('div', { id: 'trends' });
  const pointsChart = h('div', { class: 'chart-box', id: 'chart-points' });
  const eventsChart = h('div', { class: 'chart-box', id: 'chart-events' });
  const legend = h('ul', { class: 'legend' });
  const totals = h('div');
  let p = {};

  const go = (changes) => ctx.go('trends', { ...p, ...changes });
  days.addEventListener('change', () => go({ days: days.value }));
  end.addEventListener('change', () => go({ end: end.value }));
  root.append(h('form', { class: 'controls', onsubmit: (e) => e.preventDefault() },
    h('label', {}, 'Span ', days),
    h('label', {}, 'Last day ', end)), caption, body);

  return {
    // Each load sums every event in the window (see docs/dashboard.md), and a day's
    // totals move slowly: a minute between refreshes is enough.
    refreshMs: 60000,
    update(params) {
      p = {
        days: SPANS.some(([v]) => v === params.days) ? params.days : '30',
        end: /^\d{4}-\d{2}-\d{2}$/.test(params.end || '') ? params.end : '',
      };
      days.value = p.days;
      end.value = p.end;
    },
    async load() {
      // The last day is included: `to` is the next midnight. No last day means today.
      const last = p.end || utcDate();
      const to = utcDate(1, new Date(`${last}T00:00:00Z`));
      const from = utcDate(-(+p.days), new Date(`${to}T00:00:00Z`));
      const [stats, types] = await Promise.all([
        get('/v1/stats/daily', { from, to }),
        get('/v1/event-types'),
      ]);
      return () => draw(stats, types.data.map((t) => t.name));
    },
  };

  function draw(stats, configured) {
    const dates = stats.days.map((d) => d.date);
    caption.textContent = dates.length ? `${dates[0]} – ${dates[dates.length - 1]} (UTC days)` : '';
    const sums = new Map();
    for (const d of stats.days) {
      for (const [type, t] of Object.entries(d.by_type)) {
        const sum = sums.get(type) || { events: 0, points: 0 };
        sum.events += t.events;
        sum.points += t.points;
        sums.set(type, sum);
      }
    }
    if (!sums.size) {
      body.replaceChildren(h('p', { class: 'empty', text: 'No events in this window.' }));
      return;
    }
    // Colours follow the configured order, so a type keeps its colour across windows.
    const order = (t) => (configured.includes(t) ? configured.indexOf(t) : configured.length);
    const names = [...sums.keys()].sort((a, b) => order(a) - order(b) || a.localeCompare(b));
    const color = (t, i) => PALETTE[(configured.includes(t) ? order(t) : i) % PALETTE.length];
    const series = (metric) => names.map((name, i) => ({
      name,
      color: color(name, i),
      values: stats.days.map((d) => d.by_type[name]?.[metric] ?? 0),
      title: (j) => {
        const t = stats.days[j].by_type[name] || { events: 0, points: 0 };
        return `${name} ${dates[j]}: ${num(t.events)} events, ${num(t.points)} points`;
      },
    }));

    const swatch = (n) => {
      const el = h('span', { class: 'swatch' });
      el.style.background = color(n, names.indexOf(n));
      return el;
    };
    legend.replaceChildren(...names.map((n) => h('li', {}, swatch(n), n)));
    const ranked = [...names].sort((a, b) => sums.get(b).points - sums.get(a).points);
    const max = Math.max(...ranked.map((n) => sums.get(n).points));
    totals.replaceChildren(h('h3', { text: 'Totals by event type' }), table('by-type',
      [['Event type'], ['Events', 'num'], ['Points', 'num']],
      ranked.map((n) => h('tr', { 'data-type': n },
        h('td', {}, swatch(n), ` ${n}`),
        h('td', { class: 'num', text: num(sums.get(n).events) }),
        barCell(sums.get(n).points, max)))));

    body.replaceChildren(legend,
      h('section', { class: 'panel' }, h('h3', { text: 'Points per day' }), pointsChart),
      h('section', { class: 'panel' }, h('h3', { text: 'Events per day' }), eventsChart),
      totals);
    const partialLast = dates[dates.length - 1] === utcDate();
    lineChart(pointsChart, { dates, series: series('points'), label: 'Points per day', partialLast });
    lineChart(eventsChart, { dates, series: series('events'), label: 'Events per day', partialLast });
  }
}
