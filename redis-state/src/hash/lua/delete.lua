
-- Deletes an entity with its index entries.
--
-- ARGV: id, n, (field, unique) * n
-- Returns 1 if the entity existed, else 0; with unique fields of the
-- bucketed layout (kind 'r'), {existed, (index, old value) * k} instead:
-- the reserved values the caller releases.
local key, id = KEYS[1], ARGV[1]
local n = tonumber(ARGV[2])
local fields, uniques = {}, {}
for i = 1, n do
  fields[i] = ARGV[1 + 2 * i]
  uniques[i] = index_kind(ARGV[2 + 2 * i])
end
local exp_key, expv_key = KEYS[n + 2], KEYS[n + 3]
prune(now_ms() - 1000, 16, n, uniques, exp_key, expv_key)
local released, reserved = {}, false
for i = 1, n do
  local old = redis.call('HGET', key, fields[i])
  if old then unindex(i, uniques[i], old, id) end
  if uniques[i] == 'r' then
    reserved = true
    if old then
      released[#released + 1] = i
      released[#released + 1] = old
    end
  end
end
redis.call('ZREM', exp_key, id)
redis.call('HDEL', expv_key, id)
local existed = redis.call('DEL', key)
if reserved then return {existed, unpack(released)} end
return existed
