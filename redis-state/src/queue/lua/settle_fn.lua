-- Settles job `id` taken under a lease, only while the lease is held: the
-- token matches and the lease has not run out (fenced completion; both are
-- fields of the job, written with its entry in the active set).
-- `verdict` is 'done', 'retry', 'dead' or 'extend'; `ms` the retry delay
-- or the new lease; a completion's effect commands are ARGV[e..] (name,
-- number of arguments after the key, arguments), their keys KEYS[9..].
-- Returns 0 when the lease is not held, 1 done / extended, 2 retried, 3 dead.
local function settle(id, token, verdict, err, ms, dead_max, e)
  local held = redis.call('HMGET', KEYS[1], id .. ':t', id .. ':l')
  if held[1] ~= token or not held[2] or tonumber(held[2]) <= now then
    return 0
  end
  if verdict == 'extend' then
    redis.call('ZADD', KEYS[4], now + ms, id)
    redis.call('HSET', KEYS[1], id .. ':l', now + ms)
    lower_due(now + ms)
    return 1
  end
  if verdict == 'done' then
    -- The effect first: a command the server refuses ends the script with
    -- the job still leased (it comes back when the lease runs out), never
    -- with the job out of every set.
    apply_effect(e, 9)
    redis.call('ZREM', KEYS[4], id)
    forget(id)
    return 1
  end
  redis.call('ZREM', KEYS[4], id)
  redis.call('HDEL', KEYS[1], id .. ':t', id .. ':l')
  if verdict == 'retry' then
    redis.call('HSET', KEYS[1], id .. ':e', err)
    redis.call('ZADD', KEYS[3], now + ms, id)
    lower_due(now + ms)
    return 2
  end
  bury(id, err, dead_max)
  return 3
end
