-- Helpers shared by the leaderboard scripts that do more than read a rank
-- (after base.lua).

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

-- Number of members strictly worse than the band of x.
local function worse_count(k, x, raw)
  if HIGH then return redis.call('ZCOUNT', k, '-inf', below(x, raw)) end
  return redis.call('ZCOUNT', k, above(x, raw), '+inf')
end

-- Number of members in the band of x (`raw`: x as Redis wrote it).
local function band_count(k, x, raw)
  if TB == 0 then return redis.call('ZCOUNT', k, raw, raw) end
  return redis.call('ZCOUNT', k, band_low(x), band_high(x))
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
