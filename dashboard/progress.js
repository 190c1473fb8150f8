// A user's progression on the user view: the level card, the streaks and the
// achievements (unlocked, and the locked ones with how far the user is). Rules without
// levels, streaks or achievements leave the matching part out.

import { ApiError, get, userPath } from './api.js';
import { h, num, table, utc } from './dom.js';

/**
 * The user's streaks, achievements and the configured achievements (for the names of
 * the locked ones). A store that keeps no progression (the server answers 404 or 5xx)
 * gives `{ unavailable }` instead of failing the whole view; other errors (the key,
 * rate limits) are the view's.
 */
export async function loadProgress(id) {
  try {
    const [streaks, mine, catalog] = await Promise.all([
      get(userPath(id, '/streaks')),
      get(userPath(id, '/achievements')),
      get('/v1/achievements'),
    ]);
    return { streaks, mine, catalog };
  } catch (e) {
    if (e instanceof ApiError && (e.status === 404 || e.status >= 500)) return { unavailable: e.message };
    throw e;
  }
}

/** `achievement:<id>` ledger entries are an achievement's bonus; other types as they are. */
export function typeLabel(type, progress) {
  if (!type.startsWith('achievement:')) return type;
  const id = type.slice('achievement:'.length);
  const a = progress?.catalog?.data.find((x) => x.id === id);
  return `Achievement bonus: ${a ? a.name : id}`;
}

/** The level card, or nothing without levels (`level` is `null`). */
export function levelCard(points) {
  const l = points.level;
  if (!l) return null;
  const next = l.next;
  const detail = next
    ? [h('progress', {
      max: next.points - l.points,
      value: Math.max(0, points.points - l.points),
      'aria-label': `Progress from ${l.name} to level ${next.level}, ${next.name}`,
    }), h('span', { class: 'sub', text: `${num(points.points)} of ${num(next.points)} points for ${next.name}` })]
    : [h('span', { class: 'sub', text: 'Top level' })];
  return h('div', { class: 'card level' },
    h('span', { class: 'label', text: `Level ${num(l.level)}` }), h('strong', { text: l.name }), ...detail);
}

const UNITS = { day: ['day', 'days'], week: ['week', 'weeks'], month: ['month', 'months'] };
const periods = (n, period) => `${num(n)} ${(UNITS[period] || [period, period])[n === 1 ? 0 : 1]}`;

/** The panels for streaks and achievements; an empty list when neither is configured. */
export function progressPanels(progress) {
  if (progress.unavailable) {
    return [h('section', { class: 'panel progress' }, h('h3', { text: 'Streaks and achievements' }),
      h('p', { class: 'empty', text: `Not available: ${progress.unavailable}` }))];
  }
  const panels = [];
  const { streaks, mine, catalog } = progress;
  if (streaks.data.length) {
    panels.push(h('section', { class: 'panel streaks' }, h('h3', { text: 'Streaks' }),
      table('streaks', [['Streak'], ['Current', 'num'], ['Longest', 'num'], ['Breaks (UTC)'], ['Freezes', 'num']],
        streaks.data.map((s) => h('tr', { 'data-streak': s.id },
          h('td', { text: s.name }),
          h('td', { class: 'num', text: periods(s.length, s.period) }),
          h('td', { class: 'num', text: periods(s.longest, s.period) }),
          h('td', { class: 'time', text: s.expires_at ? utc(s.expires_at) : '–' }),
          h('td', { class: 'num', text: num(s.freezes) })))),
      h('p', { class: 'note', text: `Periods are counted in the user's time zone, ${streaks.timezone}.` })));
  }
  const names = new Map(catalog.data.map((a) => [a.id, a]));
  const progressOf = new Map(mine.progress.map((p) => [p.id, p]));
  const unlocked = new Set(mine.data.map((a) => a.id));
  const rows = [
    ...mine.data.map((a) => achievementRow(a, 'unlocked', progressOf.get(a.id))),
    ...mine.progress.filter((p) => !unlocked.has(p.id))
      .map((p) => achievementRow(names.get(p.id) || { id: p.id, name: p.id }, 'locked', p)),
  ];
  if (rows.length) {
    panels.push(h('section', { class: 'panel achievements' }, h('h3', { text: 'Achievements' }),
      table('achievements', [['Achievement'], ['Status'], ['Progress'], ['Unlocked (UTC)']], rows)));
  }
  return panels;
}

/** A row: the status in words (and a mark), never by colour alone. */
function achievementRow(a, state, p) {
  const status = state === 'unlocked'
    ? `✓ Unlocked${a.times > 1 ? ` ×${num(a.times)}` : ''}`
    : 'Locked';
  return h('tr', { 'data-achievement': a.id, class: state },
    h('td', {}, h('span', { class: 'name', text: a.name }),
      a.description ? h('span', { class: 'sub', text: a.description }) : null),
    h('td', { class: 'status', text: status }),
    h('td', { class: 'progress' }, p
      ? [h('progress', { max: p.target, value: p.current, 'aria-label': `${a.name}: ${p.current} of ${p.target}` }),
        ` ${num(p.current)} / ${num(p.target)}`]
      : '–'),
    h('td', { class: 'time', text: a.unlocked_at ? utc(a.unlocked_at) : '–' }));
}
