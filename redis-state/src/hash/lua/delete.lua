
-- Deletes an entity with its index entries.
--
-- ARGV: id, n, (field, unique) * n
-- Returns 1 if the entity existed, else 0.
local key, id = KEYS[1], ARGV[1]
local n = tonumber(ARGV[2])
local fields, uniques = {}, {}
for i = 1, n do
  fields[i] = ARGV[1 + 2 * i]
  uniques[i] = ARGV[2 + 2 * i] == '1'
end
local exp_key, expv_key = KEYS[n + 2], KEYS[n + 3]
prune(now_ms() - 1000, 16, n, uniques, exp_key, expv_key)
for i = 1, n do
  local old = redis.call('HGET', key, fields[i])
  if old then unindex(i, uniques[i], old, id) end
end
redis.call('ZREM', exp_key, id)
redis.call('HDEL', expv_key, id)
return redis.call('DEL', key)
