
-- Loads the entities an index lookup returned, keeping only those whose
-- indexed field still holds the value, and repairs the index for the others.
--
-- KEYS[1] the index (ZSET or HASH), KEYS[2..] the entity keys
-- ARGV: field, value, unique, nfields, field * nfields, id * #entities,
--       then the ids of entries to remove unread (they name entities outside
--       the index's hash tag, which no entity of this scope can be)
-- Returns one entry per entity: its HMGET reply, or false.
local field, value, unique = ARGV[1], ARGV[2], ARGV[3] == '1'
local nf = tonumber(ARGV[4])
local names = {}
for i = 1, nf do names[i] = ARGV[4 + i] end
local function drop(id)
  if unique then
    if redis.call('HGET', KEYS[1], value) == id then redis.call('HDEL', KEYS[1], value) end
  else
    redis.call('ZREM', KEYS[1], #value .. ':' .. value .. ':' .. id)
  end
end
for j = 4 + nf + #KEYS, #ARGV do drop(ARGV[j]) end
local out = {}
for j = 2, #KEYS do
  local key, id = KEYS[j], ARGV[4 + nf + j - 1]
  if redis.call('HGET', key, field) == value then
    out[#out + 1] = redis.call('HMGET', key, unpack(names))
  else
    drop(id)
    out[#out + 1] = false
  end
end
return out
