// Tiny DOM builders. Text always goes in through textContent, never as HTML, so data
// from the API (user ids, properties) cannot inject markup.

const SVG_NS = 'http://www.w3.org/2000/svg';

function build(el, attrs, children) {
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'text') el.textContent = v;
    else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

export const h = (tag, attrs, ...children) => build(document.createElement(tag), attrs, children);
export const s = (tag, attrs, ...children) => build(document.createElementNS(SVG_NS, tag), attrs, children);

const numbers = new Intl.NumberFormat('en-US');
export const num = (n) => numbers.format(n);

const percents = new Intl.NumberFormat('en-US', { style: 'percent', maximumFractionDigits: 1 });
/** A share from 0 to 1 as a percentage: `0.5` → `50%`. */
export const pct = (share) => percents.format(share);

/** `2026-11-02T10:00:00.000Z` → `2026-11-02 10:00:00`: the API's times are UTC. */
export const utc = (iso) => iso.slice(0, 19).replace('T', ' ');

/** Today's UTC date as `YYYY-MM-DD`, shifted by `days`. */
export function utcDate(days = 0, from = new Date()) {
  return new Date(from.getTime() + days * 86400000).toISOString().slice(0, 10);
}

/** A table inside a wrapper that scrolls sideways on narrow screens. */
export function table(cls, head, rows) {
  return h('div', { class: 'table-wrap' },
    h('table', { class: cls },
      h('thead', {}, h('tr', {}, head.map(([text, c]) => h('th', { class: c, scope: 'col' }, text)))),
      h('tbody', {}, rows)));
}

/**
 * A cell with a number and a bar proportional to it (negative values get none); `text`
 * is what the cell says, the number by default.
 */
export function barCell(value, max, text = num(value)) {
  const bar = h('span', { class: 'bar' });
  bar.style.width = `${max > 0 ? Math.max(0, (value / max) * 100) : 0}%`;
  return h('td', { class: 'num' },
    h('div', { class: 'bar-cell' }, h('span', { class: 'track' }, bar), h('span', { class: 'value', text })));
}
