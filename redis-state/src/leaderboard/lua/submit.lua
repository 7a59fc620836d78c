-- Submits scores to every board of a family (the all-time board, then the
-- current period of each window) under the model's update policy.
--
-- ARGV[6]  policy: 'r' replace, 'b' keep best, 'a' add
-- ARGV[7], ARGV[8]  bounds of the scaled score after an add ('' for none)
-- ARGV[9]  '1': return the standing of the (single) entry on every board
-- ARGV[10] number of boards B, then B expiry times (ms, '' for none)
-- then the number of entries E, then per entry: member, S, tie, data
-- (S is the scaled score, or the delta for 'a'; tie is added to S * 2^TB;
-- data is the member data, '' to leave it as it is).
--
-- Returns {'ok', changed, [stored, rank, updated] * B} (the standings only
-- when asked), or {'range', member, board, value} when an add would leave the
-- bounds, in which case nothing was written.
local policy = ARGV[6]
local lo, hi = tonumber(ARGV[7]), tonumber(ARGV[8])
local want = ARGV[9] == '1'
local nboards = tonumber(ARGV[10])
local at = 10
local p = at + nboards + 1
local nentries = tonumber(ARGV[p])
local first = p + 1

local function scaled_of(x)
  if TB == 0 then return x end
  return math.floor(x / POW)
end

local function encode(s, tie)
  if TB == 0 then return s end
  return s * POW + tie
end

-- An add must stay within the bounds on every board: check all first.
if policy == 'a' and (lo or hi) then
  for b = 0, nboards - 1 do
    local k = board_keys(b)
    local pending = {}
    for e = 0, nentries - 1 do
      local base = first + 4 * e
      local member = ARGV[base]
      local cur = pending[member]
      if cur == nil then
        local old = redis.call('ZSCORE', k, member)
        if old then cur = scaled_of(tonumber(old)) else cur = 0 end
      end
      local new = cur + tonumber(ARGV[base + 1])
      if outside(new, lo, hi) then
        return {'range', member, b, fmt(new)}
      end
      pending[member] = new
    end
  end
end

local changed = 0
local out = {'ok', 0}
for b = 0, nboards - 1 do
  local k, d, n = board_keys(b)
  local last_updated = 0
  for e = 0, nentries - 1 do
    local base = first + 4 * e
    local member, s, tie, data = ARGV[base], tonumber(ARGV[base + 1]), tonumber(ARGV[base + 2]), ARGV[base + 3]
    local old = redis.call('ZSCORE', k, member)
    if old then old = tonumber(old) end
    local new
    if policy == 'a' then
      local cur = 0
      if old then cur = scaled_of(old) end
      new = encode(cur + s, tie)
    else
      new = encode(s, tie)
      if policy == 'b' and old and not better(new, old) then new = nil end
    end
    if new then
      last_updated = 1
      if new ~= old then
        redis.call('ZADD', k, new, member)
        if b == 0 then changed = changed + 1 end
        if n then
          dense_add(n, new)
          if old then dense_check(k, n, old) end
        end
      end
      if d and data ~= '' then redis.call('HSET', d, member, data) end
    else
      last_updated = 0
    end
  end
  expire(ARGV[at + 1 + b], k, d, n)
  trim(k, d, n)
  if want then
    local member = ARGV[first]
    local cur = redis.call('ZSCORE', k, member)
    if cur then
      out[#out + 1] = cur
      out[#out + 1] = rank_of(k, n, member, tonumber(cur), cur, nil)
    else
      out[#out + 1] = false
      out[#out + 1] = false
    end
    out[#out + 1] = last_updated
  end
end
out[2] = changed
return out
