// Routing, the refresh loop and the key box. Each view exports `mount(root, ctx)`
// returning `{ update(params), load(), refreshMs? }`: `load` fetches and resolves to a
// function that draws, so a slow answer for an old route or refresh is dropped instead
// of drawn. `refreshMs` overrides how often the view reloads (default 10 s).

import { ApiError, getKey, setKey } from './api.js';
import * as leaderboard from './leaderboard.js';
import * as trends from './trends.js';
import * as user from './user.js';
import * as types from './types.js';
import * as achievements from './achievements.js';

const VIEWS = { leaderboard, trends, user, achievements, types };
const REFRESH_MS = 10000;

const root = document.getElementById('view');
const statusLine = document.getElementById('status');
const keyBox = document.getElementById('key-box');
const keyInput = document.getElementById('key-input');

let active = null; // { name, view }
let generation = 0;
let timer = null;

function parseHash() {
  const [path, query] = location.hash.replace(/^#\/?/, '').split('?');
  const name = VIEWS[path] ? path : 'leaderboard';
  return { name, params: Object.fromEntries(new URLSearchParams(query || '')) };
}

const ctx = {
  /** Navigates to a view; empty params are left out of the address. */
  go(name, params = {}) {
    const q = new URLSearchParams(Object.entries(params).filter(([, v]) => v !== '' && v != null));
    const hash = `#/${name}${q.toString() ? `?${q}` : ''}`;
    if (location.hash === hash) refresh();
    else location.hash = hash;
  },
};

async function refresh() {
  if (!active) return;
  const mine = ++generation;
  document.body.classList.add('loading');
  try {
    const draw = await active.view.load();
    if (mine !== generation) return;
    draw();
    showStatus(`Updated ${new Date().toISOString().slice(11, 19)} UTC · refreshes every ${interval() / 1000} s`);
  } catch (e) {
    if (mine !== generation) return;
    showStatus(e instanceof ApiError ? e.message : `Error: ${e.message}`, true);
    // Once: a refresh must not pull the focus back while the operator types elsewhere.
    if ((e.status === 401 || e.status === 403) && !keyBox.open) {
      keyBox.open = true;
      keyInput.focus();
    }
  } finally {
    if (mine === generation) {
      document.body.classList.remove('loading');
      schedule();
    }
  }
}

const interval = () => active?.view.refreshMs ?? REFRESH_MS;

// The next refresh counts from the end of the last one; a hidden tab skips its turn.
function schedule() {
  clearTimeout(timer);
  timer = setTimeout(() => (document.hidden ? schedule() : refresh()), interval());
}

function showStatus(text, error = false) {
  statusLine.textContent = text;
  statusLine.classList.toggle('error', error);
}

function route() {
  const { name, params } = parseHash();
  if (active?.name !== name) {
    root.replaceChildren();
    active = { name, view: VIEWS[name].mount(root, ctx) };
    for (const a of document.querySelectorAll('#tabs a')) {
      if (a.dataset.view === name) a.setAttribute('aria-current', 'page');
      else a.removeAttribute('aria-current');
    }
  }
  active.view.update(params);
  refresh();
}

function showKeyState() {
  document.getElementById('key-summary').textContent = getKey() ? 'API key ✓' : 'API key';
  keyInput.value = getKey();
}

document.getElementById('key-form').addEventListener('submit', (e) => {
  e.preventDefault();
  setKey(keyInput.value.trim());
  showKeyState();
  keyBox.open = false;
  refresh();
});
document.getElementById('key-clear').addEventListener('click', () => {
  setKey('');
  showKeyState();
  refresh();
});

window.addEventListener('hashchange', route);
document.addEventListener('visibilitychange', () => {
  if (!document.hidden) refresh();
});

showKeyState();
route();
