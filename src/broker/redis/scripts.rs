//! The Lua scripts the Redis broker runs: each is atomic on the server.

/// Publish a batch of events, in order (a group commit: one script for the publishes that
/// queued while the previous batch was on its way). Once per batch: the clock (Redis' time in
/// ms, never decreasing), the counter (`HINCRBY` by the batch's size), and the topics' last
/// publish times (one `ZADD`). Per event: `XADD` with approximate `MAXLEN ~` trimming (Redis
/// drops whole stream nodes, so a stream holds up to ~100 entries more than the history; reads
/// hide them, and those past the age, see [`READ_LUA`]), the publisher's id → (topic → hub id)
/// hash (the earliest event of each topic and alternate bearing it, kept for the history age),
/// and the channel message. Returns one element per event: its id, or the error that refused
/// it (an event whose `XADD` fails is not published; the others are).
///
/// KEYS: meta, topics. ARGV: history count, history age in ms, channel, prefix of the
/// id-mapping keys, key prefix (for `alternates`, the sorted set of alternate topics, and
/// `alt:NAME`, the canonical topics an alternate appeared with: what replay reads),
/// partitions, this partition (ids are `MS-(n × partitions + partition)`), the command that
/// publishes on the channel (`PUBLISH`, or `SPUBLISH` in a Cluster), and in a Cluster the prefix
/// of per-topic channels (the event also goes to the channel of each of its topics, for nodes
/// that follow only some topics of the partition), else empty. Then per event
/// [`PUBLISH_FIELDS`] values: stream key, topic, event type, message, private flag (`1` or
/// `0`), alternates (tab-separated), publisher id (or empty), retry (or empty).
pub(super) const PUBLISH_LUA: &str = r"
local head, width = 9, 8
local n = math.floor((#ARGV - head) / width)
if n < 1 then return {} end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local last = tonumber(redis.call('HGET', KEYS[1], 'ms') or '0')
if now < last then now = last end
local first = redis.call('HINCRBY', KEYS[1], 'seq', n) - n
redis.call('HSET', KEYS[1], 'ms', now)
local parts, part = tonumber(ARGV[6]), tonumber(ARGV[7])
local replies, stamps, seen = {}, {}, {}
for i = 1, n do
  local a = head + (i - 1) * width
  local key, topic, kind, text = ARGV[a + 1], ARGV[a + 2], ARGV[a + 3], ARGV[a + 4]
  local private, alternates, own, retry = ARGV[a + 5], ARGV[a + 6], ARGV[a + 7], ARGV[a + 8]
  local id = now .. '-' .. ((first + i) * parts + part)
  local added = redis.pcall('XADD', key, 'MAXLEN', '~', ARGV[1], id, 'e', kind, 'm', text, 'p', private, 'a', alternates, 'i', own, 'r', retry)
  if type(added) == 'table' and added.err then
    replies[i] = added
  else
    if not seen[topic] then
      seen[topic] = true
      stamps[#stamps + 1] = now
      stamps[#stamps + 1] = topic
    end
    if own ~= '' then
      local mapping = ARGV[4] .. own
      -- Before 0.2 this was a string (one hub id): replaced by the hash.
      local held = redis.call('TYPE', mapping)['ok']
      if held ~= 'hash' and held ~= 'none' then redis.call('DEL', mapping) end
      redis.call('HSETNX', mapping, topic, id)
      for alternate in string.gmatch(alternates, '[^\t]+') do
        redis.call('HSETNX', mapping, alternate, id)
      end
      redis.call('PEXPIRE', mapping, ARGV[2])
    end
    local topics = topic
    if alternates ~= '' then
      topics = topic .. '\t' .. alternates
      for alternate in string.gmatch(alternates, '[^\t]+') do
        redis.call('SADD', ARGV[5] .. 'alt:' .. alternate, topic)
        redis.call('ZADD', ARGV[5] .. 'alternates', now, alternate)
      end
    end
    local flags = ''
    if private == '1' then flags = 'p' end
    local message = id .. '\n' .. topics .. '\n' .. kind .. '\n' .. flags .. '\n' .. own .. '\n' .. retry .. '\n' .. text
    redis.call(ARGV[8], ARGV[3], message)
    if ARGV[9] ~= '' then
      redis.call(ARGV[8], ARGV[9] .. topic, message)
      if alternates ~= '' then
        for alternate in string.gmatch(alternates, '[^\t]+') do
          redis.call(ARGV[8], ARGV[9] .. alternate, message)
        end
      end
    end
    replies[i] = id
  end
end
if #stamps > 0 then redis.call('ZADD', KEYS[2], unpack(stamps)) end
return replies
";

/// Values per event in [`PUBLISH_LUA`]'s arguments.
pub(super) const PUBLISH_FIELDS: usize = 8;

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
