-- The queue's keys, the same in every script of the queue:
-- KEYS[1] jobs (one hash: per job id the fields <id> payload, <id>:p ready
-- score, <id>:a attempts, <id>:t lease token, <id>:l lease end ms, <id>:e
-- last error), KEYS[2] ready, KEYS[3] delayed, KEYS[4] active, KEYS[5] dead,
-- KEYS[6] notify, KEYS[7] due, KEYS[8] the payload hash of the old layout
-- (only read, to name a job left in it), KEYS[9..] the keys of a
-- completion's effect.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
-- `due` (KEYS[7]) is a lower bound of the earliest delayed job's due time
-- and the earliest lease end (ms; missing: unknown, so 0): a take scans the
-- delayed and active sets only once it has passed. Whatever adds to either
-- set with an earlier time lowers it.
local NEVER = 9007199254740991
local function lower_due(at)
  local d = redis.call('GET', KEYS[7])
  if d and tonumber(d) > at then
    redis.call('SET', KEYS[7], at)
  end
end
-- Deletes every field of job `id`.
local function forget(id)
  redis.call('HDEL', KEYS[1], id, id .. ':p', id .. ':a', id .. ':t', id .. ':l', id .. ':e')
end
-- Buries job `id` with error `err` in the dead set, which keeps the newest
-- `dead_max` jobs (the oldest go, at most 10 per call).
local function bury(id, err, dead_max)
  redis.call('HSET', KEYS[1], id .. ':e', err)
  redis.call('ZADD', KEYS[5], now, id)
  local over = redis.call('ZCARD', KEYS[5]) - dead_max
  if over > 0 then
    local popped = redis.call('ZPOPMIN', KEYS[5], math.min(over, 10))
    for i = 1, #popped, 2 do
      forget(popped[i])
    end
  end
end
