// One user: totals, level, breakdown by type, rank on each board, streaks and
// achievements (progress.js), the wallet (wallet.js), and the event history paged with the API's cursors (kept
// here: they are opaque and only good for this user).

import { get, userPath } from './api.js';
import { barCell, h, num, table, utc } from './dom.js';
import { levelCard, loadProgress, progressPanels, typeLabel } from './progress.js';
import { loadWallet, walletLabel, walletPanels } from './wallet.js';

const PAGE = 20;
const BOARDS = [['all', 'All time'], ['month', 'This month'], ['week', 'This week'], ['day', 'Today']];

export function mount(root, ctx) {
  const input = h('input', { type: 'search', name: 'id', placeholder: 'User id', required: true, maxlength: 128, spellcheck: 'false', 'aria-label': 'User id' });
  const body = h('div', { id: 'user' });
  let id = '';
  let cursors = [''];

  root.append(h('form', {
    class: 'controls search',
    onsubmit: (e) => {
      e.preventDefault();
      ctx.go('user', { id: input.value.trim() });
    },
  }, input, h('button', { type: 'submit' }, 'Show')), body);

  const page = (delta) => {
    if (delta < 0) cursors.pop();
    else if (delta > 0 && body.dataset.next) cursors.push(body.dataset.next);
    ctx.go('user', { id });
  };

  return {
    update(params) {
      const next = params.id || '';
      if (next !== id) cursors = [''];
      id = next;
      input.value = id;
    },
    async load() {
      if (!id) {
        return () => body.replaceChildren(h('p', { class: 'empty', text: 'Enter a user id, or pick a user on the leaderboard.' }));
      }
      const [points, history, progress, wallet, ...ranks] = await Promise.all([
        get(userPath(id, '/points')),
        get(userPath(id, '/events'), { limit: PAGE, cursor: cursors[cursors.length - 1] }),
        loadProgress(id),
        loadWallet(id),
        ...BOARDS.map(([period]) => get(`/v1/leaderboard/users/${encodeURIComponent(id)}`, { period, around: 0 })),
      ]);
      return () => draw(points, history, progress, wallet, ranks);
    },
  };

  function draw(points, history, progress, wallet, ranks) {
    body.dataset.next = history.next_cursor || '';
    const types = Object.entries(points.by_type).sort((a, b) => b[1].points - a[1].points);
    const max = Math.max(0, ...types.map(([, t]) => t.points));
    const allTime = ranks[0].rank;
    const level = levelCard(points);
    const cards = h('div', { class: level ? 'cards four' : 'cards' },
      card('Points', num(points.points)),
      card('Events', num(points.events)),
      card('All-time rank', allTime ? `#${num(allTime)}` : '–'),
      level);
    if (!points.events) {
      body.replaceChildren(h('h2', { class: 'caption', text: id }), cards,
        h('p', { class: 'empty', text: 'No events recorded for this user.' }));
      return;
    }
    const byType = table('by-type', [['Event type'], ['Events', 'num'], ['Points', 'num']],
      types.map(([name, t]) => h('tr', { 'data-type': name },
        h('td', { text: typeLabel(name, progress) }), h('td', { class: 'num', text: num(t.events) }), barCell(t.points, max))));
    const rankTable = table('ranks', [['Board'], ['Rank', 'num'], ['Points', 'num']],
      BOARDS.map(([period, label], i) => h('tr', { 'data-period': period },
        h('td', { text: label }),
        h('td', { class: 'num', text: ranks[i].rank ? `#${num(ranks[i].rank)}` : '–' }),
        h('td', { class: 'num', text: num(ranks[i].points) }))));
    const events = table('history', [['Time (UTC)'], ['Event type'], ['Points', 'num'], ['Event id', 'wide'], ['Properties', 'wide']],
      history.data.map((e) => h('tr', {},
        h('td', { class: 'time', text: utc(e.timestamp) }),
        h('td', { 'data-type': e.event_type, text: walletLabel(e) ?? typeLabel(e.event_type, progress) }),
        h('td', { class: 'num', text: num(e.points) }),
        h('td', { class: 'wide mono', text: e.event_id ?? '' }),
        h('td', { class: 'wide mono props', text: e.properties ? JSON.stringify(e.properties) : '' }))));
    const first = (cursors.length - 1) * PAGE + 1;
    const pager = h('div', { class: 'pager' },
      h('button', { type: 'button', disabled: cursors.length === 1, onclick: () => page(-1) }, '← Newer'),
      h('span', { text: history.data.length ? `${num(first)}–${num(first + history.data.length - 1)}` : 'none' }),
      h('button', { type: 'button', disabled: !history.next_cursor, onclick: () => page(1) }, 'Older →'));
    body.replaceChildren(h('h2', { class: 'caption', text: id }), cards,
      h('div', { class: 'columns' },
        h('section', { class: 'panel' }, h('h3', { text: 'By event type' }), byType),
        h('section', { class: 'panel' }, h('h3', { text: 'Rank' }), rankTable)),
      ...progressPanels(progress),
      ...walletPanels(wallet),
      h('section', { class: 'panel' }, h('h3', { text: 'History' }), events, pager));
  }
}

const card = (label, value) => h('div', { class: 'card' }, h('span', { class: 'label', text: label }), h('strong', { text: value }));
