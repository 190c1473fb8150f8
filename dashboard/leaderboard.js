// A period's leaderboard with paging. `at` is a UTC date: its midnight lies inside the
// UTC day, week and month the server's periods use.

import { get } from './api.js';
import { barCell, h, num, table } from './dom.js';

const PERIODS = [['week', 'Week'], ['day', 'Day'], ['month', 'Month'], ['all', 'All time']];
const SIZES = ['10', '25', '50', '100'];

export function mount(root, ctx) {
  const period = h('select', { name: 'period' }, PERIODS.map(([v, t]) => h('option', { value: v, text: t })));
  const at = h('input', { type: 'date', name: 'at' });
  const limit = h('select', { name: 'limit' });
  const caption = h('h2', { class: 'caption' });
  const body = h('div', { id: 'leaderboard' });
  let p = {};

  const go = (changes) => ctx.go('leaderboard', { ...p, ...changes });
  const form = h('form', { class: 'controls', onsubmit: (e) => e.preventDefault() },
    h('label', {}, 'Period ', period),
    h('label', {}, 'Date ', at),
    h('label', {}, 'Per page ', limit));
  period.addEventListener('change', () => go({ period: period.value, offset: 0 }));
  at.addEventListener('change', () => go({ at: at.value, offset: 0 }));
  limit.addEventListener('change', () => go({ limit: limit.value, offset: 0 }));
  root.append(form, caption, body);

  return {
    update(params) {
      const size = /^\d+$/.test(params.limit || '') ? String(Math.min(1000, Math.max(1, +params.limit))) : '10';
      p = {
        period: PERIODS.some(([v]) => v === params.period) ? params.period : 'week',
        at: /^\d{4}-\d{2}-\d{2}$/.test(params.at || '') ? params.at : '',
        limit: size,
        offset: /^\d+$/.test(params.offset || '') ? +params.offset : 0,
      };
      // A page size from the address that the menu lacks is added to it.
      limit.replaceChildren(...[...new Set([...SIZES, size])].sort((a, b) => a - b)
        .map((v) => h('option', { value: v, text: v })));
      period.value = p.period;
      at.value = p.at;
      at.disabled = p.period === 'all';
      limit.value = size;
    },
    async load() {
      const size = +p.limit;
      // One entry more than shown tells whether a next page exists.
      const board = await get('/v1/leaderboard', {
        period: p.period,
        at: p.period !== 'all' && p.at ? `${p.at}T00:00:00Z` : '',
        limit: size + 1,
        offset: p.offset,
      });
      return () => draw(board, size);
    },
  };

  function draw(board, size) {
    const entries = board.entries.slice(0, size);
    caption.textContent = describe(board);
    if (!entries.length) {
      body.replaceChildren(h('p', { class: 'empty', text: p.offset ? 'No more entries.' : 'No events in this period.' }));
      return;
    }
    const max = Math.max(...entries.map((e) => e.points));
    const rows = entries.map((e) => h('tr', { class: e.rank === 1 ? 'leader' : null },
      h('td', { class: 'num rank', text: e.rank }),
      h('td', { class: 'user' }, h('a', { href: userLink(e.user_id), text: e.user_id })),
      barCell(e.points, max)));
    const first = p.offset + 1;
    const pager = h('div', { class: 'pager' },
      h('button', { type: 'button', disabled: p.offset === 0, onclick: () => go({ offset: Math.max(0, p.offset - size) }) }, '← Previous'),
      h('span', { text: `${num(first)}–${num(first + entries.length - 1)}` }),
      h('button', { type: 'button', disabled: board.entries.length <= size, onclick: () => go({ offset: p.offset + size }) }, 'Next →'));
    body.replaceChildren(table('board', [['Rank', 'num'], ['User'], ['Points', 'num']], rows), pager);
  }
}

const userLink = (id) => `#/user?${new URLSearchParams({ id })}`;

function describe(board) {
  if (board.period === 'all') return 'All time';
  const start = board.start.slice(0, 10);
  const last = new Date(Date.parse(board.end) - 1).toISOString().slice(0, 10);
  if (board.period === 'day') return `Day ${start}`;
  if (board.period === 'month') return `Month ${start.slice(0, 7)}`;
  return `Week ${start} – ${last}`;
}
