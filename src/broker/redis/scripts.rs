//! The Lua scripts the Redis broker runs: each is atomic on the server.

/// Publish: next id (Redis' clock in ms, never decreasing, and a counter), `XADD` with `MAXLEN`
/// and `MINID` trimming, the topic's last publish time, the publisher's id → (topic → hub id)
/// hash (the earliest event of each topic and alternate bearing it, kept for the history age),
/// and the channel message.
/// ARGV: topic, event type, message, history count, history age in ms, channel, private flag
/// (`1` or `0`), alternates (tab-separated), publisher id (or empty), retry (or empty), prefix
/// of the id-mapping keys, key prefix (for `alternates`, the sorted set of alternate topics,
/// and `alt:NAME`, the canonical topics an alternate appeared with: what replay reads).
pub(super) const PUBLISH_LUA: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local last = tonumber(redis.call('HGET', KEYS[1], 'ms') or '0')
if now < last then now = last end
local seq = redis.call('HINCRBY', KEYS[1], 'seq', 1)
redis.call('HSET', KEYS[1], 'ms', now)
local id = string.format('%d-%d', now, seq)
redis.call('XADD', KEYS[2], 'MAXLEN', ARGV[4], id, 'e', ARGV[2], 'm', ARGV[3], 'p', ARGV[7], 'a', ARGV[8], 'i', ARGV[9], 'r', ARGV[10])
redis.call('XTRIM', KEYS[2], 'MINID', string.format('%d-0', now - tonumber(ARGV[5])))
redis.call('ZADD', KEYS[3], now, ARGV[1])
if ARGV[9] ~= '' then
  local key = ARGV[11] .. ARGV[9]
  -- Before 0.2 this was a string (one hub id): replaced by the hash.
  local kind = redis.call('TYPE', key)['ok']
  if kind ~= 'hash' and kind ~= 'none' then redis.call('DEL', key) end
  redis.call('HSETNX', key, ARGV[1], id)
  for alternate in string.gmatch(ARGV[8], '[^\t]+') do
    redis.call('HSETNX', key, alternate, id)
  end
  redis.call('PEXPIRE', key, ARGV[5])
end
for alternate in string.gmatch(ARGV[8], '[^\t]+') do
  redis.call('SADD', ARGV[12] .. 'alt:' .. alternate, ARGV[1])
  redis.call('ZADD', ARGV[12] .. 'alternates', now, alternate)
end
local flags = ''
if ARGV[7] == '1' then flags = 'p' end
local topics = ARGV[1]
if ARGV[8] ~= '' then topics = topics .. '\t' .. ARGV[8] end
redis.call('PUBLISH', ARGV[6], id .. '\n' .. topics .. '\n' .. ARGV[2] .. '\n' .. flags .. '\n' .. ARGV[9] .. '\n' .. ARGV[10] .. '\n' .. ARGV[3])
return id
";

/// Reads one topic between ARGV[1] (exclusive) and ARGV[2]: `{max-deleted-entry-id, entries}`;
/// `rev` takes the newest `count`, `fwd` the oldest.
pub(super) const READ_LUA: &str = r"
if redis.call('EXISTS', KEYS[1]) == 0 then return {'', {}} end
local info = redis.call('XINFO', 'STREAM', KEYS[1])
local deleted = ''
for i = 1, #info, 2 do
  if info[i] == 'max-deleted-entry-id' then deleted = info[i + 1] end
end
local entries
if ARGV[4] == 'rev' then
  entries = redis.call('XREVRANGE', KEYS[1], ARGV[2], ARGV[1], 'COUNT', ARGV[3])
else
  entries = redis.call('XRANGE', KEYS[1], ARGV[1], ARGV[2], 'COUNT', ARGV[3])
end
return {deleted, entries}
";

/// The publisher id → (topic → hub id) hash of KEYS[1] as a flat list (empty if there is none,
/// or it is still a string of an older version).
pub(super) const RESOLVE_LUA: &str = r"
if redis.call('TYPE', KEYS[1])['ok'] ~= 'hash' then return {} end
return redis.call('HGETALL', KEYS[1])
";
