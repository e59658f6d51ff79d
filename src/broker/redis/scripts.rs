//! The Lua scripts the Redis broker runs: each is atomic on the server.

/// Publish: next id (Redis' clock in ms, never decreasing, and a counter), `XADD` with
/// approximate `MAXLEN ~` trimming (Redis drops whole stream nodes, so a stream holds up to ~100
/// entries more than the history; reads hide them, and those past the age, see [`READ_LUA`]),
/// the topic's last publish time, the publisher's id → (topic → hub id)
/// hash (the earliest event of each topic and alternate bearing it, kept for the history age),
/// and the channel message.
/// ARGV: topic, event type, message, history count, history age in ms, channel, private flag
/// (`1` or `0`), alternates (tab-separated), publisher id (or empty), retry (or empty), prefix
/// of the id-mapping keys, key prefix (for `alternates`, the sorted set of alternate topics,
/// and `alt:NAME`, the canonical topics an alternate appeared with: what replay reads),
/// partitions, this partition (ids are `MS-(n × partitions + partition)`), the command that
/// publishes on the channel (`PUBLISH`, or `SPUBLISH` in a Cluster), and in a Cluster the prefix
/// of per-topic channels (the event also goes to the channel of each of its topics, for nodes
/// that follow only some topics of the partition), else empty.
pub(super) const PUBLISH_LUA: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local last = tonumber(redis.call('HGET', KEYS[1], 'ms') or '0')
if now < last then now = last end
local seq = redis.call('HINCRBY', KEYS[1], 'seq', 1) * tonumber(ARGV[13]) + tonumber(ARGV[14])
redis.call('HSET', KEYS[1], 'ms', now)
local id = now .. '-' .. seq
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[4], id, 'e', ARGV[2], 'm', ARGV[3], 'p', ARGV[7], 'a', ARGV[8], 'i', ARGV[9], 'r', ARGV[10])
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
local topics = ARGV[1]
if ARGV[8] ~= '' then
  topics = topics .. '\t' .. ARGV[8]
  for alternate in string.gmatch(ARGV[8], '[^\t]+') do
    redis.call('SADD', ARGV[12] .. 'alt:' .. alternate, ARGV[1])
    redis.call('ZADD', ARGV[12] .. 'alternates', now, alternate)
  end
end
local flags = ''
if ARGV[7] == '1' then flags = 'p' end
local message = id .. '\n' .. topics .. '\n' .. ARGV[2] .. '\n' .. flags .. '\n' .. ARGV[9] .. '\n' .. ARGV[10] .. '\n' .. ARGV[3]
redis.call(ARGV[15], ARGV[6], message)
if ARGV[16] ~= '' then
  redis.call(ARGV[15], ARGV[16] .. ARGV[1], message)
  for alternate in string.gmatch(ARGV[8], '[^\t]+') do
    redis.call(ARGV[15], ARGV[16] .. alternate, message)
  end
end
return id
";

/// Reads one topic between ARGV[1] (exclusive) and ARGV[2]: `{out-of-history id, entries}`;
/// `rev` takes the newest `count`, `fwd` the oldest. Only the newest ARGV[5] entries younger
/// than ARGV[6] ms (by Redis' clock) are history: the publish script trims approximately, so older entries may
/// still be in the stream. The first element is the newest id no longer in history (deleted, or
/// still there but past the count or the age), or `''`: a cursor before it has missed events.
pub(super) const READ_LUA: &str = r"
if redis.call('EXISTS', KEYS[1]) == 0 then return {'', {}} end
local function parse(id)
  local ms, seq = string.match(id, '^(%d+)-(%d+)$')
  return tonumber(ms), tonumber(seq)
end
local function later(a, b)
  if b == '' then return true end
  local am, as = parse(a)
  local bm, bs = parse(b)
  return am > bm or (am == bm and as > bs)
end
local info = redis.call('XINFO', 'STREAM', KEYS[1])
local gone = ''
for i = 1, #info, 2 do
  if info[i] == 'max-deleted-entry-id' and info[i + 1] ~= '0-0' then gone = info[i + 1] end
end
local keep = tonumber(ARGV[5])
if redis.call('XLEN', KEYS[1]) > keep then
  local beyond = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', keep + 1)
  local id = beyond[#beyond][1]
  if later(id, gone) then gone = id end
end
local t = redis.call('TIME')
local cutoff = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) - tonumber(ARGV[6])
local aged = {}
if cutoff > 0 then
  aged = redis.call('XREVRANGE', KEYS[1], string.format('%d-18446744073709551615', cutoff), '-', 'COUNT', 1)
end
if #aged > 0 and later(aged[1][1], gone) then gone = aged[1][1] end
local start = ARGV[1]
if gone ~= '' and later(gone, string.sub(start, 2)) then start = '(' .. gone end
local entries
if ARGV[4] == 'rev' then
  entries = redis.call('XREVRANGE', KEYS[1], ARGV[2], start, 'COUNT', ARGV[3])
else
  entries = redis.call('XRANGE', KEYS[1], start, ARGV[2], 'COUNT', ARGV[3])
end
return {gone, entries}
";

/// The publisher id → (topic → hub id) hash of KEYS[1] as a flat list (empty if there is none,
/// or it is still a string of an older version).
pub(super) const RESOLVE_LUA: &str = r"
if redis.call('TYPE', KEYS[1])['ok'] ~= 'hash' then return {} end
return redis.call('HGETALL', KEYS[1])
";

/// A partition's watermark (Cluster): raises its clock so that every id it issues from now on
/// is above ARGV[1]-ARGV[2] (the event a node holds back), and says so on its tick channel with a
/// message that is just an id: the partition issued nothing after it. Node merges waiting on
/// an idle partition learn from it that they may go on. KEYS[1]: meta; ARGV: floor ms, floor
/// seq, partitions, partition, channel. Returns the watermark.
pub(super) const TICK_LUA: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local last = tonumber(redis.call('HGET', KEYS[1], 'ms') or '0')
local n = tonumber(redis.call('HGET', KEYS[1], 'seq') or '0')
local seq = n * tonumber(ARGV[3]) + tonumber(ARGV[4])
if now < last then now = last end
local floor_ms, floor_seq = tonumber(ARGV[1]), tonumber(ARGV[2])
if now < floor_ms then now = floor_ms end
if now == floor_ms and seq <= floor_seq then now = floor_ms + 1 end
if now ~= last then redis.call('HSET', KEYS[1], 'ms', now) end
local id = now .. '-' .. seq
redis.call('SPUBLISH', ARGV[5], id)
return id
";
