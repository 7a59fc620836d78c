
-- Writes an entity: save, insert, update, versioned save, or a TTL change.
--
-- ARGV: mode, id, ttl_op, ttl_value, version_field, expected_version,
--       nset, (field, value) * nset, ndel, field * ndel,
--       n, (field, unique, touched, present, value) * n,
--       nverify, (index, holder, key position) * nverify,
--       ntok, (index, token) * ntok, pending_ms
--
-- KEYS after the expiry keys: the keys of the unique-index holders to verify
-- (their positions are given in ARGV; 0 for a holder whose key lies in
-- another slot, which cannot be an entity of this hash tag).
--
-- Returns {'ok', new_version}, {'exists'}, {'missing'}, {'conflict', actual}
-- or {'unique', (field, value, holder, verified) * k}: the values held by
-- other ids, each verified ('1': the holder exists and holds the value) or
-- not ('0': its key was not given; call again with it).
--
-- Unique fields of the bucketed layout (kind 'r') are reserved in the
-- value's own slot before this call, which gets the reservation's token
-- per value set. When such a value differs from the stored one, the write
-- goes ahead only if the token is not revoked in this bucket's fence ZSET
-- (the last key, given when ntok > 0) and is at most pending_ms old by this
-- server's clock; otherwise it writes nothing and returns {'fenced', field}
-- or {'stale', field}. On success the reply carries, after the version,
-- (index, old value) for each such value the write replaced or removed:
-- their reservations are released by the caller.
local key = KEYS[1]
local mode, id = ARGV[1], ARGV[2]
local ttl_op, ttl_value = ARGV[3], ARGV[4]
local vfield, vexpected = ARGV[5], ARGV[6]
local pos = 7
local nset = tonumber(ARGV[pos]); pos = pos + 1
local set_from = pos; pos = pos + 2 * nset
local ndel = tonumber(ARGV[pos]); pos = pos + 1
local del_from = pos; pos = pos + ndel
local n = tonumber(ARGV[pos]); pos = pos + 1
local idx_from = pos; pos = pos + 5 * n
local nverify = tonumber(ARGV[pos]) or 0; pos = pos + 1
-- index position .. ':' .. holder -> KEYS position of the holder (0: none)
local given = {}
for j = 0, nverify - 1 do
  local b = pos + 3 * j
  given[ARGV[b] .. ':' .. ARGV[b + 1]] = tonumber(ARGV[b + 2])
end

pos = pos + 3 * nverify
local ntok = tonumber(ARGV[pos]) or 0; pos = pos + 1
local tokens = {}
for j = 0, ntok - 1 do
  tokens[tonumber(ARGV[pos + 2 * j])] = ARGV[pos + 2 * j + 1]
end
local pending_ms = tonumber(ARGV[pos + 2 * ntok]) or 0

local fields, uniques, touched, present, values = {}, {}, {}, {}, {}
for i = 1, n do
  local b = idx_from + 5 * (i - 1)
  fields[i] = ARGV[b]
  uniques[i] = index_kind(ARGV[b + 1])
  touched[i] = ARGV[b + 2] == '1'
  present[i] = ARGV[b + 3] == '1'
  values[i] = ARGV[b + 4]
end
local exp_key, expv_key = KEYS[n + 2], KEYS[n + 3]

-- A plain save needs no existence check: it is asked for only where a mode
-- or the version needs it (one call less per entity).
local exists = false
if mode ~= 'save' or vfield ~= '' then
  exists = redis.call('EXISTS', key) == 1
end
if mode == 'insert' and exists then return {'exists'} end
if (mode == 'update' or mode == 'ttl') and not exists then return {'missing'} end

-- the server's time, read when first needed: a re-save of a live entity
-- without unique values to check never needs it
local now = 0

local newver = ''
if vfield ~= '' and mode ~= 'ttl' then
  local cur = 0
  if exists then cur = tonumber(redis.call('HGET', key, vfield) or '0') or 0 end
  if mode == 'versioned' and cur ~= tonumber(vexpected) then
    return {'conflict', tostring(cur)}
  end
  newver = string.format('%d', cur + 1)
end

local taken = {}
for i = 1, n do
  if uniques[i] == true and touched[i] and present[i] then
    local holder = redis.call('HGET', KEYS[1 + i], values[i])
    if holder and holder ~= id then
      if now == 0 then now = now_ms() end
      local at = redis.call('ZSCORE', exp_key, holder)
      local hpos = given[i .. ':' .. holder]
      if at and tonumber(at) < now then
        prune_one(holder, n, uniques, exp_key, expv_key)
      elseif hpos == nil then
        taken[#taken + 1] = fields[i]
        taken[#taken + 1] = values[i]
        taken[#taken + 1] = holder
        taken[#taken + 1] = '0'
      elseif hpos > 0 and redis.call('HGET', KEYS[hpos], fields[i]) == values[i] then
        taken[#taken + 1] = fields[i]
        taken[#taken + 1] = values[i]
        taken[#taken + 1] = holder
        taken[#taken + 1] = '1'
      else
        -- a stale entry: the holder is gone or holds another value
        if hpos == 0 or redis.call('EXISTS', KEYS[hpos]) == 0 then
          prune_one(holder, n, uniques, exp_key, expv_key)
        end
        unindex(i, true, values[i], holder)
      end
    end
  end
end
if #taken > 0 then
  return {'unique', unpack(taken)}
end

-- the indexed values before the write, in one call
local olds = {}
if n > 0 then
  olds = redis.call('HMGET', key, unpack(fields, 1, n))
  -- Index entries of entities that expired more than a second ago are
  -- pruned (16 at most) by every write that may add expiry bookkeeping:
  -- one whose entity held no indexed value (new, re-created after it
  -- expired, or without any). A write to an entity that held one only
  -- moves its entry, so the bookkeeping grows only in writes that prune,
  -- and the common re-save skips the TIME and ZRANGEBYSCORE calls.
  local held = false
  for i = 1, n do
    if olds[i] then held = true; break end
  end
  if not held then
    if now == 0 then now = now_ms() end
    prune(now - 1000, 16, n, uniques, exp_key, expv_key)
  end
end

-- reserved values this write takes: their tokens must still be good
for i = 1, n do
  if uniques[i] == 'r' and touched[i] and present[i] and olds[i] ~= values[i] then
    local t = tokens[i]
    if not t then return {'stale', fields[i]} end
    if redis.call('ZSCORE', KEYS[#KEYS], t) then return {'fenced', fields[i]} end
    local at = tonumber(string.match(t, '^(%d+)%.'))
    if now == 0 then now = now_ms() end
    if not at or now - at > pending_ms then return {'stale', fields[i]} end
  end
end

if nset > 0 then
  redis.call('HSET', key, unpack(ARGV, set_from, set_from + 2 * nset - 1))
end
if ndel > 0 then
  redis.call('HDEL', key, unpack(ARGV, del_from, del_from + ndel - 1))
end
if newver ~= '' then
  redis.call('HSET', key, vfield, newver)
end
if ttl_op == 'px' then
  redis.call('PEXPIRE', key, ttl_value)
elseif ttl_op == 'pxat' then
  redis.call('PEXPIREAT', key, ttl_value)
elseif ttl_op == 'persist' then
  redis.call('PERSIST', key)
end

local released = nil
if n > 0 then
  -- one call tells both whether the entity is still there (-2: gone, after
  -- a TTL in the past or every field removed) and its expiry
  local at = redis.call('PEXPIRETIME', key)
  local alive = at ~= -2
  -- the values after the write, in place of the ones sent
  local news = values
  for i = 1, n do
    local new = olds[i]
    if touched[i] then
      if present[i] then new = values[i] else new = false end
    end
    if not alive then new = false end
    if olds[i] and olds[i] ~= new then
      unindex(i, uniques[i], olds[i], id)
      if uniques[i] == 'r' then
        released = released or {}
        released[#released + 1] = i
        released[#released + 1] = olds[i]
      end
    end
    if new then
      index(i, uniques[i], new, id)
    end
    news[i] = new
  end
  track_expiry(at, id, news, n, exp_key, expv_key)
end

if released then return {'ok', newver, unpack(released)} end
return {'ok', newver}
