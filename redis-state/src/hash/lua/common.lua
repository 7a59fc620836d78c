-- Shared by the hash scripts of redis-state.
--
-- KEYS[1]            the entity hash
-- KEYS[2 .. 1+n]     one key per indexed field: a ZSET (index) or a HASH (unique)
-- KEYS[2+n], [3+n]   the expiry bookkeeping of indexed models: a ZSET id -> expire-at ms,
--                    and a HASH id -> the entity's packed index values
--
-- An index member is "<len>:<value>:<id>", so the members of one value form one
-- lexicographic range and no value can be confused with another.

local function member(v, id)
  return #v .. ':' .. v .. ':' .. id
end

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- packs a list of optional values (n entries, nil = absent)
local function pack(vals, n)
  -- models have few indexes: concatenating beats building a table to join
  local out = ''
  for i = 1, n do
    local v = vals[i]
    if v then
      out = out .. '+' .. #v .. ':' .. v
    else
      out = out .. '-'
    end
  end
  return out
end

-- the n values `pack` wrote, or nil when `s` is not of that shape (written
-- by another client or corrupted): callers drop such bookkeeping instead of
-- failing every write of the scope
local function unpack_vals(s, n)
  local vals, pos = {}, 1
  for i = 1, n do
    local c = string.sub(s, pos, pos)
    if c == '+' then
      local colon = string.find(s, ':', pos + 1, true)
      if not colon then return nil end
      local digits = string.sub(s, pos + 1, colon - 1)
      if not string.match(digits, '^%d+$') then return nil end
      local len = tonumber(digits)
      if colon + len > #s then return nil end
      vals[i] = string.sub(s, colon + 1, colon + len)
      pos = colon + len + 1
    elseif c == '-' then
      vals[i] = false
      pos = pos + 1
    else
      return nil
    end
  end
  if pos ~= #s + 1 then return nil end
  return vals
end

-- the kind of index i from its argument: true (unique, a HASH beside the
-- entities), false (index, a ZSET) or 'r' (unique in the bucketed layout:
-- a reservation in the value's own slot, which no script here touches)
local function index_kind(a)
  if a == 'r' then return 'r' end
  return a == '1'
end

-- removes the index entry of value v for id (index i is KEYS[1+i])
local function unindex(i, unique, v, id)
  local k = KEYS[1 + i]
  if unique == 'r' then return end
  if unique then
    if redis.call('HGET', k, v) == id then
      redis.call('HDEL', k, v)
    end
  else
    redis.call('ZREM', k, member(v, id))
  end
end

local function index(i, unique, v, id)
  local k = KEYS[1 + i]
  if unique == 'r' then return end
  if unique then
    redis.call('HSET', k, v, id)
  else
    redis.call('ZADD', k, 0, member(v, id))
  end
end

-- forgets the index entries of an expired entity
local function prune_one(id, n, uniques, exp_key, expv_key)
  local packed = redis.call('HGET', expv_key, id)
  local vals = packed and unpack_vals(packed, n)
  -- unparsable bookkeeping is dropped below; the index entries it named are
  -- stale entries that lookups verify and remove
  if vals then
    for i = 1, n do
      if vals[i] then
        unindex(i, uniques[i], vals[i], id)
      end
    end
  end
  redis.call('ZREM', exp_key, id)
  redis.call('HDEL', expv_key, id)
end

-- forgets up to `limit` entities that expired before `before` (ms)
local function prune(before, limit, n, uniques, exp_key, expv_key)
  local ids = redis.call('ZRANGEBYSCORE', exp_key, '-inf', '(' .. before, 'LIMIT', 0, limit)
  for _, id in ipairs(ids) do
    prune_one(id, n, uniques, exp_key, expv_key)
  end
  return #ids
end

-- records (or clears) the expiry of an indexed entity; `at` is the entity's
-- PEXPIRETIME (-2: gone, -1: no expiry)
local function track_expiry(at, id, vals, n, exp_key, expv_key)
  if at > 0 then
    redis.call('ZADD', exp_key, at, id)
    redis.call('HSET', expv_key, id, pack(vals, n))
  else
    redis.call('ZREM', exp_key, id)
    redis.call('HDEL', expv_key, id)
  end
end
