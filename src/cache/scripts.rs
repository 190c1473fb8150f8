//! The Lua scripts: every step that reads a flag and acts on it runs as one script, so
//! no other client's command lands between the check and the act.
//!
//! Keys are built inside the scripts from the prefix in `ARGV[1]` (see docs/caching.md
//! for the layout). That suits a standalone Redis or a primary with replicas, not Redis
//! Cluster, whose scripts must declare every key up front.

use redis::Script;

/// Helpers shared by the scripts (prepended to each).
const COMMON: &str = r#"
local P = ARGV[1]
local function gen(token) return P .. 'g:' .. token .. ':' end
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
-- The cache stops being trusted: readers go to the store, a build in progress is
-- abandoned, and no new build may finish for `settle` ms, so that every instance that
-- saw the outage has time to come back and invalidate too.
local function invalidate(settle)
  redis.call('DEL', P .. 'epoch', P .. 'build')
  redis.call('SET', P .. 'quiet', '1', 'PX', settle)
end
local function clear_user(g, u)
  for _, period in ipairs(redis.call('SMEMBERS', g .. 'ul:' .. u)) do
    redis.call('ZREM', g .. 'lb:' .. period, u)
  end
  redis.call('DEL', g .. 'u:' .. u, g .. 'ul:' .. u)
end
-- x = {u = user, d = erase?, t = {{type, events, points}}, p = {{period, score}},
--      dup = a duplicate of this user was seen}
local function apply(g, x)
  if x.d then clear_user(g, x.u) return end
  for _, t in ipairs(x.t) do
    redis.call('HINCRBY', g .. 'u:' .. x.u, 'n:' .. t[1], t[2])
    redis.call('HINCRBY', g .. 'u:' .. x.u, 'p:' .. t[1], t[3])
  end
  for _, p in ipairs(x.p) do
    redis.call('ZINCRBY', g .. 'lb:' .. p[1], p[2], x.u)
    redis.call('SADD', g .. 'ul:' .. x.u, p[1])
  end
end
local function live()
  local e = redis.call('GET', P .. 'epoch')
  if e and redis.call('EXISTS', gen(e) .. 'meta') == 1 then return e end
  return nil
end
"#;

/// ARGV: prefix, write id, deadline ms, user...
/// Announces a write before it reaches the store (see `LOAD`).
const ANNOUNCE: &str = r#"
local deadline = now_ms() + tonumber(ARGV[3])
redis.call('ZADD', P .. 'inflight', deadline, ARGV[2])
for i = 4, #ARGV do
  local k = P .. 'wi:' .. ARGV[i]
  redis.call('ZADD', k, deadline, ARGV[2])
  redis.call('PEXPIRE', k, 2 * tonumber(ARGV[3]))
end
return 1
"#;

/// ARGV: prefix, write id, deadline ms, settle ms, mode (apply|invalidate), json users.
/// Reports a write the store acknowledged (or whose outcome is unknown). Returns the
/// users marked `dup` that have another write in flight.
const REPORT: &str = r#"
local announced = redis.call('ZREM', P .. 'inflight', ARGV[2]) == 1
local seq = redis.call('INCR', P .. 'seq')
local users = cjson.decode(ARGV[6])
for _, x in ipairs(users) do
  redis.call('ZREM', P .. 'wi:' .. x.u, ARGV[2])
  redis.call('SET', P .. 'wv:' .. x.u, seq, 'PX', 2 * tonumber(ARGV[3]))
end
-- Unannounced, a build may have read this user before or after the write: no delta
-- can be right for sure, so nothing is trusted until a rebuild.
if not announced or ARGV[5] ~= 'apply' then invalidate(ARGV[4]) return {} end
local e = redis.call('GET', P .. 'epoch')
if e then for _, x in ipairs(users) do apply(gen(e), x) end end
local b = redis.call('GET', P .. 'build')
if b then
  for _, x in ipairs(users) do
    if redis.call('SISMEMBER', P .. 'b:' .. b .. ':loaded', x.u) == 1 then
      apply(gen(b), x)
    else
      redis.call('SADD', P .. 'b:' .. b .. ':dirty', x.u)
    end
  end
end
-- A duplicate means the event is in the store. If another write of the user is still
-- unreported, it may be the one that stored it, from an instance that died before
-- reporting: the caller waits for it (see `PENDING`, `ABANDON`).
local now = now_ms()
local pending = {}
for _, x in ipairs(users) do
  if x.dup and redis.call('ZCOUNT', P .. 'wi:' .. x.u, '(' .. now, '+inf') > 0 then
    pending[#pending + 1] = x.u
  end
end
return pending
"#;

/// ARGV: prefix, user... The users that still have an announced, unreported write.
const PENDING: &str = r#"
local now = now_ms()
local out = {}
for i = 2, #ARGV do
  if redis.call('ZCOUNT', P .. 'wi:' .. ARGV[i], '(' .. now, '+inf') > 0 then
    out[#out + 1] = ARGV[i]
  end
end
return out
"#;

/// ARGV: prefix, settle ms, user... Declares the users' unreported writes lost: their
/// announcements are withdrawn (a late report then invalidates again) and the cache is
/// invalidated, since it may miss them.
const ABANDON: &str = r#"
for i = 3, #ARGV do
  local k = P .. 'wi:' .. ARGV[i]
  for _, wid in ipairs(redis.call('ZRANGE', k, 0, -1)) do
    redis.call('ZREM', P .. 'inflight', wid)
  end
  redis.call('DEL', k)
end
invalidate(ARGV[2])
return 1
"#;

/// ARGV: prefix, settle ms.
const INVALIDATE: &str = r#"
invalidate(ARGV[2])
return 1
"#;

/// ARGV: prefix, user. Nil when the cache is not live.
const READ_USER: &str = r#"
local e = live()
if not e then return false end
return redis.call('HGETALL', gen(e) .. 'u:' .. ARGV[2])
"#;

/// ARGV: prefix, period, start, stop. `{higher, {member, score, ...}}` where `higher`
/// counts the members strictly ahead of the first row (scores are negated points).
const READ_BOARD: &str = r#"
local e = live()
if not e then return false end
local k = gen(e) .. 'lb:' .. ARGV[2]
local rows = redis.call('ZRANGE', k, ARGV[3], ARGV[4], 'WITHSCORES')
local higher = 0
if #rows > 0 then higher = redis.call('ZCOUNT', k, '-inf', '(' .. rows[2]) end
return {higher, rows}
"#;

/// ARGV: prefix, period, user, around. `{start, higher, rows}`; start -1 when the user
/// is not on the board.
const READ_STANDING: &str = r#"
local e = live()
if not e then return false end
local k = gen(e) .. 'lb:' .. ARGV[2]
local pos = redis.call('ZRANK', k, ARGV[3])
if not pos then return {-1, 0, {}} end
local around = tonumber(ARGV[4])
local start = math.max(0, pos - around)
local rows = redis.call('ZRANGE', k, start, pos + around, 'WITHSCORES')
local higher = redis.call('ZCOUNT', k, '-inf', '(' .. rows[2])
return {start, higher, rows}
"#;

/// ARGV: prefix. 1 when the cache is live.
const STATUS: &str = r#"
if live() then return 1 end
return 0
"#;

/// ARGV: prefix, run id ('' when unknown), settle ms. `{epoch, build, reason}`:
/// invalidates when an announced write outlived its deadline (its writer died or
/// stalled) or a generation's data is gone or came from another Redis process (a
/// restart that reloaded an old snapshot, a failover).
const PROBE: &str = r#"
local reason = ''
if redis.call('ZREMRANGEBYSCORE', P .. 'inflight', '-inf', now_ms()) > 0 then
  reason = 'a write announced to the cache never reported back'
end
local e = redis.call('GET', P .. 'epoch')
local b = redis.call('GET', P .. 'build')
for _, token in ipairs({e or '', b or ''}) do
  if token ~= '' then
    local run = redis.call('HGET', gen(token) .. 'meta', 'run_id')
    if not run then
      reason = 'cache data lost'
    elseif ARGV[2] ~= '' and run ~= ARGV[2] then
      reason = 'redis restarted with older data'
    end
  end
end
if reason ~= '' then invalidate(ARGV[3]) return {'', '', reason} end
return {e or '', b or '', ''}
"#;

/// ARGV: prefix, token, lease ms, run id. 1 when this build now holds the lock.
const ACQUIRE: &str = r#"
if redis.call('EXISTS', P .. 'build') == 1 then return 0 end
redis.call('SET', P .. 'build', ARGV[2], 'PX', ARGV[3])
redis.call('SADD', P .. 'gens', ARGV[2])
redis.call('HSET', gen(ARGV[2]) .. 'meta', 'run_id', ARGV[4])
return 1
"#;

/// ARGV: prefix, token, lease ms, user... Renews the lease and returns each user's
/// version, or '-' for a user with a write in flight (marked dirty for later). Nil when
/// the build lost its lock.
const CHECK_USERS: &str = r#"
local token = ARGV[2]
if redis.call('GET', P .. 'build') ~= token then return false end
redis.call('PEXPIRE', P .. 'build', ARGV[3])
local now = now_ms()
local out = {}
for i = 4, #ARGV do
  local u = ARGV[i]
  if redis.call('ZCOUNT', P .. 'wi:' .. u, '(' .. now, '+inf') > 0 then
    redis.call('SADD', P .. 'b:' .. token .. ':dirty', u)
    out[#out + 1] = '-'
  else
    out[#out + 1] = redis.call('GET', P .. 'wv:' .. u) or '0'
  end
end
return out
"#;

/// ARGV: prefix, token, json users (with `v`, the version `CHECK_USERS` returned).
/// Writes each user's counters as read from the store, unless a write of that user was
/// announced or reported since the check (then the read may be stale: dirty again).
/// Returns how many users loaded, -1 when the build lost its lock.
const LOAD: &str = r#"
local token = ARGV[2]
if redis.call('GET', P .. 'build') ~= token then return -1 end
local g = gen(token)
local now = now_ms()
local loaded = 0
for _, x in ipairs(cjson.decode(ARGV[3])) do
  local busy = redis.call('ZCOUNT', P .. 'wi:' .. x.u, '(' .. now, '+inf') > 0
  local v = redis.call('GET', P .. 'wv:' .. x.u) or '0'
  if busy or v ~= x.v then
    redis.call('SADD', P .. 'b:' .. token .. ':dirty', x.u)
  else
    clear_user(g, x.u)
    apply(g, x)
    redis.call('SADD', P .. 'b:' .. token .. ':loaded', x.u)
    redis.call('SREM', P .. 'b:' .. token .. ':dirty', x.u)
    loaded = loaded + 1
  end
end
return loaded
"#;

/// ARGV: prefix, token. 'done', 'wait' (settling after an invalidation), 'dirty' (users
/// left to load) or 'aborted' (the lock is gone).
const FINALIZE: &str = r#"
local token = ARGV[2]
if redis.call('GET', P .. 'build') ~= token then return 'aborted' end
if redis.call('EXISTS', P .. 'quiet') == 1 then return 'wait' end
if redis.call('SCARD', P .. 'b:' .. token .. ':dirty') > 0 then return 'dirty' end
redis.call('SET', P .. 'epoch', token)
redis.call('DEL', P .. 'build', P .. 'b:' .. token .. ':loaded', P .. 'b:' .. token .. ':dirty')
return 'done'
"#;

/// ARGV: prefix, token. Gives the lock up after a failed build.
const RELEASE: &str = r#"
if redis.call('GET', P .. 'build') == ARGV[2] then redis.call('DEL', P .. 'build') end
return 1
"#;

pub struct Scripts {
    pub announce: Script,
    pub report: Script,
    pub pending: Script,
    pub abandon: Script,
    pub invalidate: Script,
    pub read_user: Script,
    pub read_board: Script,
    pub read_standing: Script,
    pub status: Script,
    pub probe: Script,
    pub acquire: Script,
    pub check_users: Script,
    pub load: Script,
    pub finalize: Script,
    pub release: Script,
}

impl Scripts {
    pub fn new() -> Scripts {
        let s = |body: &str| Script::new(&format!("{COMMON}{body}"));
        Scripts {
            announce: s(ANNOUNCE),
            report: s(REPORT),
            pending: s(PENDING),
            abandon: s(ABANDON),
            invalidate: s(INVALIDATE),
            read_user: s(READ_USER),
            read_board: s(READ_BOARD),
            read_standing: s(READ_STANDING),
            status: s(STATUS),
            probe: s(PROBE),
            acquire: s(ACQUIRE),
            check_users: s(CHECK_USERS),
            load: s(LOAD),
            finalize: s(FINALIZE),
            release: s(RELEASE),
        }
    }
}
