-- The queue's keys, the same in every script of the queue:
-- KEYS[1] data, KEYS[2] prio, KEYS[3] ready, KEYS[4] delayed, KEYS[5] active,
-- KEYS[6] attempts, KEYS[7] token, KEYS[8] errors, KEYS[9] dead,
-- KEYS[10] notify, KEYS[11..] the keys of a completion's effect.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
-- Buries job `id` with error `err` in the dead set, which keeps the newest
-- `dead_max` jobs (the oldest go, at most 10 per call).
local function bury(id, err, dead_max)
  redis.call('HSET', KEYS[8], id, err)
  redis.call('ZADD', KEYS[9], now, id)
  local over = redis.call('ZCARD', KEYS[9]) - dead_max
  if over > 0 then
    local popped = redis.call('ZPOPMIN', KEYS[9], math.min(over, 10))
    for i = 1, #popped, 2 do
      redis.call('HDEL', KEYS[1], popped[i])
      redis.call('HDEL', KEYS[2], popped[i])
      redis.call('HDEL', KEYS[6], popped[i])
      redis.call('HDEL', KEYS[8], popped[i])
    end
  end
end
