-- Increments a counter field of an existing entity, within the range of its
-- Rust type.
--
-- KEYS[1] the entity; ARGV: field, delta, float ('1'/'0'), min, max ('' = none)
-- Returns {'ok', value}, {'missing'} or {'range', value}.
local key, field, delta = KEYS[1], ARGV[1], ARGV[2]
if redis.call('EXISTS', key) == 0 then return {'missing'} end
local old = redis.call('HGET', key, field)
if ARGV[3] == '1' then
  redis.call('HINCRBYFLOAT', key, field, delta)
else
  redis.call('HINCRBY', key, field, delta)
end
local v = redis.call('HGET', key, field)
local num = tonumber(v)
if (ARGV[4] ~= '' and num < tonumber(ARGV[4])) or (ARGV[5] ~= '' and num > tonumber(ARGV[5])) then
  if old then redis.call('HSET', key, field, old) else redis.call('HDEL', key, field) end
  return {'range', v}
end
return {'ok', v}
