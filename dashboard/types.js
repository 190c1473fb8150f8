// The event types in force (GET /v1/event-types), in the order of the events file.

import { get } from './api.js';
import { h, num, table } from './dom.js';

export function mount(root) {
  const body = h('div', { id: 'types' });
  root.append(h('h2', { class: 'caption', text: 'Event types in force' }), body);
  return {
    update() {},
    async load() {
      const types = await get('/v1/event-types');
      return () => body.replaceChildren(
        table('types', [['Name'], ['Points', 'num'], ['Description']],
          types.data.map((t) => h('tr', { 'data-type': t.name },
            h('td', { class: 'mono', text: t.name }),
            h('td', { class: `num ${t.points < 0 ? 'negative' : ''}`, text: num(t.points) }),
            h('td', { text: t.description })))),
        h('p', { class: 'note', text: 'Points are fixed when an event is recorded: a changed value applies to later events only.' }));
    },
  };
}
