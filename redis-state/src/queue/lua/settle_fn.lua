-- Settles job `id` taken under a lease, only while the lease is held: the
-- token matches and the lease has not run out (fenced completion).
-- `verdict` is 'done', 'retry', 'dead' or 'extend'; `ms` the retry delay
-- or the new lease; a completion's effect commands are ARGV[e..] (name,
-- number of arguments after the key, arguments), their keys KEYS[11..].
-- Returns 0 when the lease is not held, 1 done / extended, 2 retried, 3 dead.
local function settle(id, token, verdict, err, ms, dead_max, e)
  if redis.call('HGET', KEYS[7], id) ~= token then
    return 0
  end
  local until_ms = redis.call('ZSCORE', KEYS[5], id)
  if not until_ms or tonumber(until_ms) <= now then
    return 0
  end
  if verdict == 'extend' then
    redis.call('ZADD', KEYS[5], now + ms, id)
    return 1
  end
  if verdict == 'done' then
    -- The effect first: a command the server refuses ends the script with
    -- the job still leased (it comes back when the lease runs out), never
    -- with the job out of every set.
    apply_effect(e, 11)
  end
  redis.call('ZREM', KEYS[5], id)
  redis.call('HDEL', KEYS[7], id)
  if verdict == 'done' then
    redis.call('HDEL', KEYS[1], id)
    redis.call('HDEL', KEYS[2], id)
    redis.call('HDEL', KEYS[6], id)
    redis.call('HDEL', KEYS[8], id)
    return 1
  end
  if verdict == 'retry' then
    redis.call('HSET', KEYS[8], id, err)
    redis.call('ZADD', KEYS[4], now + ms, id)
    return 2
  end
  bury(id, err, dead_max)
  return 3
end
