-- The plain save of a model with no version field and no unique index: the
-- write script's 'save' mode in a compact form. With nothing to verify, it
-- writes the fields, applies the TTL, moves the index entries and keeps the
-- expiry bookkeeping, leaving the state the write script would leave.
--
-- KEYS: the entity, then (for indexed models) one ZSET per index and the
-- expiry ZSET and HASH, as the write script has them.
--
-- ARGV: id, ttl_op, ttl_value, position * n, nset, (field, value) * nset,
--       then the fields to remove (the rest).
-- Position i says where index i's field is: p > 0, the field is set (its
-- name is ARGV[p], its value ARGV[p + 1]); p < 0, it is removed (its name
-- is ARGV[-p]).
--
-- Returns 1.
--
-- Every call runs this body, and every `local function` in it is a new
-- closure each time: the shared helpers (common.lua) are defined inside
-- `pruning()`, called only by a write that prunes, and the index members
-- and packed values are written inline, in common.lua's `member` and
-- `pack` formats. The single index, the common case, is read and moved
-- with scalars: the tables of the general path cost about 7% of the
-- call's server time (measured with redis-benchmark and INFO
-- commandstats on Redis 7.0).
local key, id = KEYS[1], ARGV[1]
local n = #KEYS - 3
if n < 0 then n = 0 end
local set_from = 5 + n
local del_from = set_from + 2 * tonumber(ARGV[4 + n])
local nargs = #ARGV

-- The indexed fields' old and new values (new false: the field is
-- removed): old1/new1 for one index, the tables olds/news for more.
local old1, new1, olds, news
local held = false
if n == 1 then
  local p, f = tonumber(ARGV[4])
  if p > 0 then
    f, new1 = ARGV[p], ARGV[p + 1]
  else
    f, new1 = ARGV[-p], false
  end
  old1 = redis.call('HGET', key, f)
  held = old1 ~= false
elseif n > 1 then
  local fields = {}
  news = {}
  for i = 1, n do
    local p = tonumber(ARGV[3 + i])
    if p > 0 then
      fields[i], news[i] = ARGV[p], ARGV[p + 1]
    else
      fields[i], news[i] = ARGV[-p], false
    end
  end
  olds = redis.call('HMGET', key, unpack(fields, 1, n))
  for i = 1, n do
    if olds[i] then held = true; break end
  end
end
-- pruned only by a write that may add bookkeeping, as the write script
-- does: its entity held no indexed value
if n > 0 and not held then
  local plain = {}
  for i = 1, n do plain[i] = false end
  local prune, now_ms = pruning()
  prune(now_ms() - 1000, 16, n, plain, KEYS[n + 2], KEYS[n + 3])
end

if del_from > set_from then
  redis.call('HSET', key, unpack(ARGV, set_from, del_from - 1))
end
if nargs >= del_from then
  redis.call('HDEL', key, unpack(ARGV, del_from, nargs))
end
local ttl_op = ARGV[2]
if ttl_op == 'px' then
  redis.call('PEXPIRE', key, ARGV[3])
elseif ttl_op == 'pxat' then
  redis.call('PEXPIREAT', key, ARGV[3])
elseif ttl_op == 'persist' then
  redis.call('PERSIST', key)
end
if n == 0 then return 1 end

-- Each index's entry moves from the old value to the new one (none once
-- the entity is gone: a TTL in the past deletes it).
local at = redis.call('PEXPIRETIME', key)
local alive = at ~= -2
local packed
if n == 1 then
  local new = alive and new1
  if old1 and old1 ~= new then
    redis.call('ZREM', KEYS[2], #old1 .. ':' .. old1 .. ':' .. id)
  end
  if new then
    redis.call('ZADD', KEYS[2], 0, #new .. ':' .. new .. ':' .. id)
    packed = '+' .. #new .. ':' .. new
  else
    packed = '-'
  end
else
  packed = ''
  for i = 1, n do
    local new, old = alive and news[i], olds[i]
    if old and old ~= new then
      redis.call('ZREM', KEYS[1 + i], #old .. ':' .. old .. ':' .. id)
    end
    if new then
      redis.call('ZADD', KEYS[1 + i], 0, #new .. ':' .. new .. ':' .. id)
      packed = packed .. '+' .. #new .. ':' .. new
    else
      packed = packed .. '-'
    end
  end
end
if at > 0 then
  redis.call('ZADD', KEYS[n + 2], at, id)
  redis.call('HSET', KEYS[n + 3], id, packed)
else
  redis.call('ZREM', KEYS[n + 2], id)
  redis.call('HDEL', KEYS[n + 3], id)
end
return 1
