-- Takes the next job under a lease: first, once the `due` bound has
-- passed, promotes due delayed jobs and reclaims jobs whose lease ran out
-- (at most 100 of each per call) and sets the bound again; then pops the
-- ready job of highest priority (oldest first among equals).
-- `woken`: a BLPOP of the wake-up list ran just before (it took the
-- token), so the token goes back while ready jobs are left, for the next
-- blocked worker. A take that did not block leaves the list alone: a token
-- left over wakes one worker for nothing, whose empty take deletes it.
-- Returns {id, payload, attempt}, {false, ms until something may be due or
-- -1}, or {false, -2, id} when the job met is one of the old layout (put
-- back untouched).
local function take(lease, token, max_attempts, dead_max, woken)
  local due = tonumber(redis.call('GET', KEYS[7]) or '0')
  local was = due
  if now >= due then
    for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now, 'LIMIT', 0, 100)) do
      redis.call('ZREM', KEYS[3], id)
      redis.call('ZADD', KEYS[2], redis.call('HGET', KEYS[1], id .. ':p') or 0, id)
    end
    for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[4], '-inf', now, 'LIMIT', 0, 100)) do
      redis.call('ZREM', KEYS[4], id)
      local j = redis.call('HMGET', KEYS[1], id .. ':a', id .. ':p')
      redis.call('HDEL', KEYS[1], id .. ':t', id .. ':l')
      local n = tonumber(j[1] or '0')
      if n >= max_attempts then
        bury(id, 'the lease ran out on each of ' .. n .. ' attempts (its workers died or stalled)', dead_max)
      else
        redis.call('ZADD', KEYS[2], j[2] or 0, id)
      end
    end
    due = NEVER
    local d = redis.call('ZRANGE', KEYS[3], 0, 0, 'WITHSCORES')
    if #d > 0 then due = tonumber(d[2]) end
    local a = redis.call('ZRANGE', KEYS[4], 0, 0, 'WITHSCORES')
    if #a > 0 and tonumber(a[2]) < due then due = tonumber(a[2]) end
  end
  local top = redis.call('ZPOPMIN', KEYS[2], 1)
  if #top == 0 then
    redis.call('DEL', KEYS[6])
    if due ~= was then redis.call('SET', KEYS[7], due) end
    if due >= NEVER then return {false, -1} end
    return {false, due - now}
  end
  local id = top[1]
  local j = redis.call('HMGET', KEYS[1], id, id .. ':a')
  if not j[1] and redis.call('HEXISTS', KEYS[8], id) == 1 then
    redis.call('ZADD', KEYS[2], top[2], id)
    if due ~= was then redis.call('SET', KEYS[7], due) end
    return {false, -2, id}
  end
  local attempt = tonumber(j[2] or '0') + 1
  local until_ms = now + lease
  -- Numbers written as integer text here: a Lua number passed to
  -- redis.call is formatted by the server with %.17g, dearer.
  local until_s = string.format('%d', until_ms)
  redis.call('HSET', KEYS[1], id .. ':a', string.format('%d', attempt), id .. ':t', token, id .. ':l', until_s)
  redis.call('ZADD', KEYS[4], until_s, id)
  if until_ms < due then due = until_ms end
  if due ~= was then redis.call('SET', KEYS[7], due) end
  if woken and redis.call('ZCARD', KEYS[2]) > 0 and redis.call('LLEN', KEYS[6]) == 0 then
    redis.call('LPUSH', KEYS[6], 1)
  end
  return {id, j[1] or false, attempt}
end
