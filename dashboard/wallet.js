// A user's wallet on the user view: the balance, what is available and held, the totals
// behind them, the next expiries and the open holds; and wallet entries of the history in
// words. Rules without a wallet section leave it all out.

import { ApiError, get, userPath } from './api.js';
import { h, num, table, utc } from './dom.js';

/** How many of the next expiries the panel lists. */
const EXPIRIES = 5;

/**
 * The wallet and the open holds. Rules without a wallet (the server answers 404) give
 * `{ off: true }`, so the view leaves the wallet out; a store that keeps no wallet
 * (501, or 5xx) gives `{ unavailable }` instead of failing the whole view; other
 * errors (the key, rate limits) are the view's.
 */
export async function loadWallet(id) {
  try {
    const [wallet, holds] = await Promise.all([get(userPath(id, '/wallet')), get(userPath(id, '/holds'))]);
    return { wallet, holds };
  } catch (e) {
    if (e instanceof ApiError && e.status === 404) return { off: true };
    if (e instanceof ApiError && e.status >= 500) return { unavailable: e.message };
    throw e;
  }
}

const VERBS = { spend: 'Spent', hold: 'Held', capture: 'Captured', release: 'Released', expire: 'Expired' };

/**
 * A wallet entry of the history (`wallet:<kind>`, what it did in `properties`) in words:
 * "Spent 30 (order-77, coupon)", "Held 50 (cart-9)", "Expired 20 (due 2026-11-12 00:00:00)";
 * `null` for any other event.
 */
export function walletLabel(e) {
  if (!e.event_type.startsWith('wallet:')) return null;
  const kind = e.event_type.slice('wallet:'.length);
  const p = e.properties || {};
  const verb = VERBS[kind] || `Wallet ${kind}`;
  let ref = p.ref;
  if (kind === 'expire' && /^\d+$/.test(ref || '')) ref = `due ${utc(new Date(Number(ref)).toISOString())}`;
  const why = [ref, p.reason].filter((x) => x !== undefined && x !== null && x !== '');
  const amount = typeof p.amount === 'number' ? ` ${num(p.amount)}` : '';
  return `${verb}${amount}${why.length ? ` (${why.join(', ')})` : ''}`;
}

/** The wallet's panels; an empty list without a wallet section. */
export function walletPanels(w) {
  if (w.off) return [];
  if (w.unavailable) {
    return [h('section', { class: 'panel wallet' }, h('h3', { text: 'Wallet' }),
      h('p', { class: 'empty', text: `Not available: ${w.unavailable}` }))];
  }
  const { wallet, holds } = w;
  const expiring = wallet.expiring.slice(0, EXPIRIES);
  return [
    h('section', { class: 'panel wallet' }, h('h3', { text: 'Wallet' }),
      h('div', { class: 'cards' },
        card('Balance', wallet.balance, 'balance'),
        card('Available', wallet.available, 'available'),
        card('Held', wallet.held, 'held')),
      h('p', { class: 'note totals', text: `Earned ${num(wallet.earned)}, spent ${num(wallet.spent)}, expired ${num(wallet.expired)}. `
        + 'Balance is earned less spent and expired; available is the balance less what open holds reserve.' })),
    h('div', { class: 'columns' },
      h('section', { class: 'panel wallet-expiring' }, h('h3', { text: 'Next expiries' }),
        expiring.length
          ? table('expiring', [['Expires (UTC)'], ['Points', 'num']],
            expiring.map((x) => h('tr', {},
              h('td', { class: 'time', text: utc(x.at) }),
              h('td', { class: 'num', text: num(x.points) }))))
          : h('p', { class: 'empty', text: 'No points due to expire.' }),
        wallet.expiring.length > EXPIRIES
          ? h('p', { class: 'note', text: `${num(wallet.expiring.length - EXPIRIES)} later expiries not shown.` })
          : null),
      h('section', { class: 'panel wallet-holds' }, h('h3', { text: 'Open holds' }),
        holds.data.length
          ? table('holds', [['Hold'], ['Amount', 'num'], ['Created (UTC)', 'wide'], ['Releases (UTC)']],
            holds.data.map((x) => h('tr', { 'data-hold': x.hold_id },
              h('td', { class: 'mono', text: x.hold_id }),
              h('td', { class: 'num', text: num(x.amount) }),
              h('td', { class: 'time wide', text: utc(x.created_at) }),
              h('td', { class: 'time', text: utc(x.expires_at) }))))
          : h('p', { class: 'empty', text: 'No open holds.' }))),
  ];
}

const card = (label, value, cls) => h('div', { class: `card ${cls}` },
  h('span', { class: 'label', text: label }), h('strong', { text: num(value) }));
