-- Move the oldest dead jobs of a queue back to ready, with fresh attempts.
-- KEYS[1] dead, KEYS[2] ready, KEYS[3] jobs (the queue's job hash: <id>
-- payload, <id>:p ready score, <id>:a attempts, <id>:e last error),
-- KEYS[4] notify
-- ARGV[1] how many at most
-- Returns the ids moved (a dead id whose payload is gone stays dead).
local moved = {}
local ids = redis.call('ZRANGE', KEYS[1], 0, tonumber(ARGV[1]) - 1)
for _, id in ipairs(ids) do
  if redis.call('HEXISTS', KEYS[3], id) == 1 then
    redis.call('ZREM', KEYS[1], id)
    redis.call('HDEL', KEYS[3], id .. ':a', id .. ':e')
    redis.call('ZADD', KEYS[2], redis.call('HGET', KEYS[3], id .. ':p') or 0, id)
    moved[#moved + 1] = id
  end
end
if #moved > 0 and redis.call('LLEN', KEYS[4]) == 0 then
  redis.call('LPUSH', KEYS[4], 1)
end
return moved
