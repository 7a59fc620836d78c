-- Take the fill lease of a missing entry, or learn who has it.
-- KEYS[1] entry, KEYS[2] lease, KEYS[3] done stream
-- ARGV[1] token, ARGV[2] lease ms, ARGV[3] '1' to ignore an existing value
-- Returns {0, value} (hit), {1} (lease taken), {2} (another caller loads),
-- {3} (recently invalidated: load without caching).
if ARGV[3] ~= '1' then
  local v = redis.call('GET', KEYS[1])
  if v then return {0, v} end
end
local holder = redis.call('GET', KEYS[2])
if holder == 'inv' then return {3} end
if holder then return {2} end
redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
redis.call('DEL', KEYS[3])
return {1}
