//! The Lua scripts the Redis store runs. Each touches only the keys it is
//! given, and on a Redis Cluster those keys share one hash slot (see
//! [`super::keys`]), so every script stays one atomic step on one server.

/// GCRA over several keys, all or nothing. ARGV per key: cost, interval and
/// tolerance in microseconds; then one more: `check` to decide without
/// writing anything (the first phase of a batch spanning cluster slots),
/// anything else (or nothing) to apply the takes if all are allowed.
/// Returns four integers per key: allowed, remaining, retry-after µs,
/// reset-after µs.
pub(super) const GCRA: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local write = ARGV[3 * #KEYS + 1] ~= 'check'
local pending = {}
local order = {}
local out = {}
local all = true
for i = 1, #KEYS do
  local key = KEYS[i]
  local cost = tonumber(ARGV[3 * i - 2])
  local interval = tonumber(ARGV[3 * i - 1])
  local tolerance = tonumber(ARGV[3 * i])
  local tat = pending[key]
  if tat == nil then
    tat = tonumber(redis.call('GET', key)) or now
  end
  if tat < now then tat = now end
  local new_tat = tat + interval * cost
  if new_tat - now <= tolerance then
    if pending[key] == nil then order[#order + 1] = key end
    pending[key] = new_tat
    out[#out + 1] = 1
    out[#out + 1] = math.floor((tolerance - (new_tat - now)) / interval)
    out[#out + 1] = 0
    out[#out + 1] = new_tat - now
  else
    all = false
    out[#out + 1] = 0
    out[#out + 1] = math.max(0, math.floor((tolerance - (tat - now)) / interval))
    out[#out + 1] = new_tat - now - tolerance
    out[#out + 1] = tat - now
  end
end
if all and write then
  for _, key in ipairs(order) do
    local tat = pending[key]
    local ttl = math.max(1, math.ceil((tat - now) / 1000))
    redis.call('SET', key, string.format('%.0f', tat), 'PX', ttl)
  end
end
return out
";

/// A quota-checked `kv` write. KEYS: the value, the namespace's index
/// (sorted set: key → expiry in ms, `+inf` for none), its sizes (hash: key →
/// bytes) and its byte total. ARGV: the key, the value, the TTL in ms (0:
/// none), max keys, max bytes, the entry's bytes, and a condition: empty
/// for none, `absent`, or `value` with the expected bytes in ARGV[8].
/// Expired index entries are dropped first, so dead keys never hold the
/// quota. Returns `ok`, `mismatch` (the condition failed), `keys` or
/// `bytes` (the quota that refused).
pub(super) const KV_SET: &str = r"
if ARGV[7] == 'absent' then
  if redis.call('EXISTS', KEYS[1]) == 1 then return 'mismatch' end
elseif ARGV[7] == 'value' then
  if redis.call('GET', KEYS[1]) ~= ARGV[8] then return 'mismatch' end
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local expired = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now)
for _, k in ipairs(expired) do
  local size = tonumber(redis.call('HGET', KEYS[3], k) or '0')
  redis.call('HDEL', KEYS[3], k)
  redis.call('DECRBY', KEYS[4], size)
end
if #expired > 0 then redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now) end
local old = redis.call('HGET', KEYS[3], ARGV[1])
local keys = redis.call('ZCARD', KEYS[2])
if not old then keys = keys + 1 end
local bytes = tonumber(redis.call('GET', KEYS[4]) or '0') - tonumber(old or '0') + tonumber(ARGV[6])
if keys > tonumber(ARGV[4]) then return 'keys' end
if bytes > tonumber(ARGV[5]) then return 'bytes' end
local ttl = tonumber(ARGV[3])
if ttl > 0 then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ttl)
  redis.call('ZADD', KEYS[2], now + ttl, ARGV[1])
else
  redis.call('SET', KEYS[1], ARGV[2])
  redis.call('ZADD', KEYS[2], '+inf', ARGV[1])
end
redis.call('HSET', KEYS[3], ARGV[1], ARGV[6])
redis.call('SET', KEYS[4], bytes)
return 'ok'
";

/// A `kv` delete that gives the entry's share of the quota back. KEYS as
/// for the set; ARGV: the key. Returns 1 if a live value was removed.
pub(super) const KV_DELETE: &str = r"
local removed = redis.call('DEL', KEYS[1])
local size = redis.call('HGET', KEYS[3], ARGV[1])
if size then
  redis.call('HDEL', KEYS[3], ARGV[1])
  redis.call('DECRBY', KEYS[4], tonumber(size))
end
redis.call('ZREM', KEYS[2], ARGV[1])
return removed
";
