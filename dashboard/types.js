// The event types in force (GET /v1/event-types), in the order of the events file, and
// the rules versions the store has registered (GET /v1/rules).

import { get } from './api.js';
import { h, num, table, utc } from './dom.js';

function capText(cap) {
  if (!cap) return '–';
  const per = `per ${cap.period === 'all' ? 'user, ever' : cap.period}`;
  return cap.max_events != null
    ? `${num(cap.max_events)} event${cap.max_events === 1 ? '' : 's'} ${per}`
    : `${num(cap.max_points)} points ${per}`;
}

export function mount(root) {
  const body = h('div', { id: 'types' });
  const versions = h('div', { id: 'rules-versions' });
  root.append(
    h('h2', { class: 'caption', text: 'Event types in force' }), body,
    h('h2', { class: 'caption', text: 'Rules versions' }), versions);
  return {
    update() {},
    async load() {
      const [types, rules] = await Promise.all([get('/v1/event-types'), get('/v1/rules')]);
      return () => {
        body.replaceChildren(
          table('types', [['Name'], ['Points', 'num'], ['Cap'], ['Description']],
            types.data.map((t) => h('tr', { 'data-type': t.name },
              h('td', { class: 'mono', text: t.name }),
              h('td', { class: `num ${t.points < 0 ? 'negative' : ''}`, text: num(t.points) }),
              h('td', { text: capText(t.cap) }),
              h('td', { text: t.description })))),
          h('p', { class: 'note', text: 'Points are fixed when an event is recorded: a changed value applies to later events, unless the ledger is replayed (eventtracker recompute).' }));
        versions.replaceChildren(
          table('versions', [['Version', 'num'], ['Activated (UTC)'], ['SHA-256'], ['']],
            rules.data.map((v) => h('tr', { 'data-version': String(v.version) },
              h('td', { class: 'num', text: num(v.version) }),
              h('td', { text: utc(v.activated_at) }),
              h('td', { class: 'mono', text: v.hash.slice(0, 12) }),
              h('td', { text: v.version === rules.current ? 'in force' : '' })))));
      };
    },
  };
}
