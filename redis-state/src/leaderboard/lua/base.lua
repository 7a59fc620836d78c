-- The base of every leaderboard script of redis-state: the configuration and
-- the rank of a member. Kept small: every call of a script creates its local
-- functions anew.
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
-- The keys of the first board: board, data (or nil), dense (or nil).
local K1, D1, N1 = KEYS[1], nil, nil
if DATA then D1 = KEYS[2] end
if DENSE then N1 = KEYS[STRIDE] end

-- Exclusive bounds just above / below the band of x, as ZCOUNT arguments.
-- `raw` is x as Redis wrote it (ZSCORE's reply), which is exact: without a
-- tie-break the band is x itself. With one, bands are integers, so the
-- exclusive bound is the next integer, passed as a number (Redis writes
-- numbers exactly; Lua's own number-to-string keeps 14 digits only).
local function above(x, raw)
  if TB == 0 then return '(' .. raw end
  return math.floor(x / POW) * POW + POW
end

local function below(x, raw)
  if TB == 0 then return '(' .. raw end
  return math.floor(x / POW) * POW - 1
end

-- The rank (1-based, in the model's rank mode) of a member with stored score
-- x (`raw`: as Redis wrote it) on board k with dense set n; `pos` is its
-- ordinal position when the caller knows it.
local function rank_of(k, n, member, x, raw, pos)
  if MODE == 'o' then
    if not pos then
      if HIGH then pos = redis.call('ZREVRANK', k, member)
      else pos = redis.call('ZRANK', k, member) end
      if not pos then return false end
    end
    return pos + 1
  end
  if MODE == 'c' then
    if HIGH then return redis.call('ZCOUNT', k, above(x, raw), '+inf') + 1 end
    return redis.call('ZCOUNT', k, '-inf', below(x, raw)) + 1
  end
  -- Dense: the #dense set holds one member per band, scored with the band's
  -- lowest stored value.
  if TB ~= 0 then x = math.floor(x / POW) * POW end
  if HIGH then
    if TB == 0 then return redis.call('ZCOUNT', n, '(' .. raw, '+inf') + 1 end
    return redis.call('ZCOUNT', n, x + 1, '+inf') + 1
  end
  if TB == 0 then return redis.call('ZCOUNT', n, '-inf', '(' .. raw) + 1 end
  return redis.call('ZCOUNT', n, '-inf', x - 1) + 1
end
