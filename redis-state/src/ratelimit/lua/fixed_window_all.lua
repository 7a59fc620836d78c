-- Fixed window counting every request, as the common redis-py recipe does
-- (`INCR`, then `EXPIRE` on the first): denied requests count too, so a
-- client that keeps retrying stays denied until the window ends. A counter
-- left without a TTL (written by hand) starts a new window instead of
-- denying forever.
--
-- KEYS[1] the window's counter
-- ARGV[1] limit, ARGV[2] window (ms), ARGV[3] cost
-- Returns {allowed (0/1), remaining, retry after (ms), reset after (ms)}.
local limit, window, cost = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local ttl = redis.call('PTTL', KEYS[1])
if ttl == -1 then
  -- a counter without a TTL would never reset: open a new window
  redis.call('DEL', KEYS[1])
  ttl = -2
elseif ttl >= 0 then
  local held = redis.call('GET', KEYS[1])
  if not string.match(held, '^[+-]?%d+$') then
    return redis.error_reply('ERR rate limit counter at ' .. KEYS[1] .. ' is not an integer')
  end
end
local n = redis.call('INCRBY', KEYS[1], cost)
if ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], window)
  ttl = window
end
if n > limit then
  return {0, 0, ttl, ttl}
end
return {1, limit - n, 0, ttl}
