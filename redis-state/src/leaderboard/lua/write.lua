-- Write helpers of the leaderboard scripts (after common.lua).

-- True when a sum x may not be stored under the bounds lo, hi (nil: none):
-- NaN, or a finite value outside them. Infinities are values of the float
-- score types (whose bounds are finite for f32) and add as in Rust.
local function outside(x, lo, hi)
  if x ~= x then return true end
  if x == math.huge or x == -math.huge then return false end
  return (lo ~= nil and x < lo) or (hi ~= nil and x > hi)
end

-- Dense ranking: one member per distinct band, scored with the band.
local function dense_add(n, x)
  local b = fmt(band_low(x))
  redis.call('ZADD', n, b, b)
end

-- Forgets the band of x when no member is left in it.
local function dense_check(k, n, x)
  if band_count(k, x, fmt(x)) == 0 then
    redis.call('ZREM', n, fmt(band_low(x)))
  end
end

-- Calls `cmd key f1 f2 ...` in chunks (Lua's unpack has a stack limit).
local function chunked(cmd, key, list)
  local i = 1
  while i <= #list do
    local j = math.min(i + 499, #list)
    redis.call(cmd, key, unpack(list, i, j))
    i = j + 1
  end
end

-- Keeps the best CAP members of a board, removing the others with their data
-- and dense bands. Returns the number removed.
local function trim(k, d, n)
  if CAP == 0 then return 0 end
  local extra = redis.call('ZCARD', k) - CAP
  if extra <= 0 then return 0 end
  local worst
  if HIGH then
    worst = redis.call('ZRANGE', k, 0, extra - 1, 'WITHSCORES')
    redis.call('ZREMRANGEBYRANK', k, 0, extra - 1)
  else
    worst = redis.call('ZRANGE', k, -extra, -1, 'WITHSCORES')
    redis.call('ZREMRANGEBYRANK', k, -extra, -1)
  end
  if d then
    local members = {}
    for i = 1, #worst, 2 do members[#members + 1] = worst[i] end
    chunked('HDEL', d, members)
  end
  if n then
    local last = nil
    for i = 2, #worst, 2 do
      local b = band_low(tonumber(worst[i]))
      if b ~= last then dense_check(k, n, b); last = b end
    end
  end
  return extra
end

-- Sets the expiry of a board and its companions (`at` in ms, '' for none).
local function expire(at, k, d, n)
  if at == '' then return end
  redis.call('PEXPIREAT', k, at)
  if d then redis.call('PEXPIREAT', d, at) end
  if n then redis.call('PEXPIREAT', n, at) end
end
