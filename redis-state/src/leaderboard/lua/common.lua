-- Shared by the leaderboard scripts of redis-state.
--
-- A board is a plain ZSET. Its stored score is the real score, or, on boards
-- with a tie-break, `S * 2^TB + tie` where S is the (scaled) integer score and
-- `tie` (in [0, 2^TB)) encodes the time of the achievement so that the earlier
-- (or later) achiever of an equal score sorts first. A *band* is the range of
-- stored values that share one real score: [S * 2^TB, S * 2^TB + 2^TB - 1]
-- (a single value when TB = 0).
--
-- KEYS, per board, in order: the board ZSET, then its member-data HASH (models
-- with member data), then its distinct-score ZSET (dense ranking), all in one
-- hash slot.
--
-- ARGV[1] order: 'h' high-first, 'l' low-first
-- ARGV[2] TB, the tie-break bits (0: no tie-break)
-- ARGV[3] rank mode: 'o' ordinal, 'c' competition, 'd' dense
-- ARGV[4] '1' when the model has member data
-- ARGV[5] cap: most members a board keeps (0: no cap)
-- Script-specific arguments start at ARGV[6].

local HIGH = ARGV[1] == 'h'
local TB = tonumber(ARGV[2])
local POW = 2 ^ TB
local MODE = ARGV[3]
local DATA = ARGV[4] == '1'
local DENSE = MODE == 'd'
local CAP = tonumber(ARGV[5])
local STRIDE = 1
if DATA then STRIDE = STRIDE + 1 end
if DENSE then STRIDE = STRIDE + 1 end

-- Exact text of a double (Lua's own conversion keeps 14 digits only).
local function fmt(x)
  if x == 0 then x = 0 end -- no "-0"
  return string.format('%.17g', x)
end

local function band_low(x)
  if TB == 0 then return x end
  return math.floor(x / POW) * POW
end

local function band_high(x)
  if TB == 0 then return x end
  return math.floor(x / POW) * POW + (POW - 1)
end

-- The keys of board i (0-based): board, data (or nil), dense (or nil).
local function board_keys(i)
  local b = i * STRIDE + 1
  local k, d, n = KEYS[b], nil, nil
  local j = b + 1
  if DATA then d = KEYS[j]; j = j + 1 end
  if DENSE then n = KEYS[j] end
  return k, d, n
end

local function better(a, b)
  if HIGH then return a > b end
  return a < b
end

-- Number of members strictly better than the band of x.
local function better_count(k, x)
  if HIGH then return redis.call('ZCOUNT', k, '(' .. fmt(band_high(x)), '+inf') end
  return redis.call('ZCOUNT', k, '-inf', '(' .. fmt(band_low(x)))
end

-- Number of members strictly worse than the band of x.
local function worse_count(k, x)
  if HIGH then return redis.call('ZCOUNT', k, '-inf', '(' .. fmt(band_low(x))) end
  return redis.call('ZCOUNT', k, '(' .. fmt(band_high(x)), '+inf')
end

-- Number of members in the band of x.
local function band_count(k, x)
  return redis.call('ZCOUNT', k, fmt(band_low(x)), fmt(band_high(x)))
end

-- Ordinal position (0-based) of a member, or false.
local function position(k, member)
  if HIGH then return redis.call('ZREVRANK', k, member) end
  return redis.call('ZRANK', k, member)
end

-- The rank (1-based, in the model's rank mode) of a member with stored score
-- x; `pos` is its ordinal position when the caller knows it.
local function rank_of(k, n, member, x, pos)
  if MODE == 'o' then
    if pos then return pos + 1 end
    local p = position(k, member)
    if not p then return false end
    return p + 1
  end
  if MODE == 'c' then return better_count(k, x) + 1 end
  local b = band_low(x)
  if HIGH then return redis.call('ZCOUNT', n, '(' .. fmt(b), '+inf') + 1 end
  return redis.call('ZCOUNT', n, '-inf', '(' .. fmt(b)) + 1
end

-- Dense ranking: one member per distinct band, scored with the band.
local function dense_add(n, x)
  local b = fmt(band_low(x))
  redis.call('ZADD', n, b, b)
end

-- Forgets the band of x when no member is left in it.
local function dense_check(k, n, x)
  if band_count(k, x) == 0 then
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

-- Reads the data of `members` (a list) from hash d: a list of values or false.
local function data_of(d, members)
  local out = {}
  local i = 1
  while i <= #members do
    local j = math.min(i + 499, #members)
    local vals = redis.call('HMGET', d, unpack(members, i, j))
    for x = 1, #vals do out[#out + 1] = vals[x] end
    i = j + 1
  end
  return out
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
