// The configured achievements and how rare each is (GET /v1/achievements): how many
// users unlocked it, and their share of the users with any ledger entry.

import { get } from './api.js';
import { barCell, h, num, pct, table } from './dom.js';

export function mount(root) {
  const caption = h('h2', { class: 'caption', text: 'Achievements' });
  const body = h('div', { id: 'achievements' });
  root.append(caption, body);
  return {
    update() {},
    async load() {
      const list = await get('/v1/achievements');
      return () => {
        if (!list.data.length) {
          body.replaceChildren(h('p', { class: 'empty', text: 'No achievements are configured (achievements: in the rules file).' }));
          return;
        }
        body.replaceChildren(
          table('rarity', [['Achievement'], ['Description', 'wide'], ['Users', 'num'], ['Share', 'num']],
            list.data.map((a) => h('tr', { 'data-achievement': a.id },
              h('td', { text: a.name }),
              h('td', { class: 'wide', text: a.description }),
              h('td', { class: 'num', text: num(a.users) }),
              barCell(a.share, 1, pct(a.share))))),
          h('p', { class: 'note', text: `Share: of the ${num(list.users)} user${list.users === 1 ? '' : 's'} with any points entry.` }));
      };
    },
  };
}
