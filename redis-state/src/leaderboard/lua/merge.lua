-- Merges boards into a destination board: union or intersection, with member
-- data taken from the first source that has it, dense bands rebuilt, the
-- destination's expiry and the cap applied.
--
-- KEYS: the destination's keys (board, data, dense as the model has them),
-- then per source: its board and, for models with member data, its data.
-- ARGV[6]  'u' union, 'i' intersection
-- ARGV[7]  aggregate: 'MAX', 'MIN' or 'SUM'
-- ARGV[8]  number of sources
-- ARGV[9]  expiry of the destination (ms, '' for none)
-- ARGV[10] '1': sum in the script (tie-break boards: decode, add, re-encode)
-- ARGV[11] '1': the tie is 2^TB - 1 - t (else t), t being the time index
-- ARGV[12], ARGV[13] bounds of a summed scaled score ('' for none)
-- ARGV[14] '1': scaled scores are integers; every running total must stay
--          within +-(2^53 - 1), where double sums are exact
-- Returns {'ok', members} or {'range', member, value} (nothing written).
local dk, dd, dn = board_keys(0)
local how, agg = ARGV[6], ARGV[7]
local ns = tonumber(ARGV[8])
local at = ARGV[9]
local lua_sum = ARGV[10] == '1'
local rev = ARGV[11] == '1'
local lo, hi = tonumber(ARGV[12]), tonumber(ARGV[13])
local exact = ARGV[14] == '1'
local LIMIT = 9007199254740991
local sstride = 1
if DATA then sstride = 2 end
local sources, sdata = {}, {}
for i = 1, ns do
  local b = STRIDE + 1 + (i - 1) * sstride
  sources[i] = KEYS[b]
  if DATA then sdata[i] = KEYS[b + 1] end
end

if lua_sum then
  local acc, cnt, latest, order = {}, {}, {}, {}
  for i = 1, ns do
    local items = redis.call('ZRANGE', sources[i], 0, -1, 'WITHSCORES')
    for j = 1, #items, 2 do
      local m, x = items[j], tonumber(items[j + 1])
      -- Without a tie-break the stored value is the score (an infinity of
      -- a float board included, which the split below would turn into NaN).
      local s, t = x, 0
      if TB > 0 then
        s = math.floor(x / POW)
        local tie = x - s * POW
        t = tie
        if rev then t = POW - 1 - tie end
      end
      if acc[m] == nil then
        acc[m], cnt[m], latest[m] = s, 1, t
        order[#order + 1] = m
      else
        local sum = acc[m] + s
        -- Past 2^53 - 1 a double sum may have rounded (and a later negative
        -- term could bring it back into range, wrong).
        if exact and (sum > LIMIT or sum < -LIMIT) then return {'range', m, fmt(sum)} end
        acc[m] = sum
        cnt[m] = cnt[m] + 1
        if t > latest[m] then latest[m] = t end
      end
    end
  end
  local pairs_ = {}
  for _, m in ipairs(order) do
    if how == 'u' or cnt[m] == ns then
      local s = acc[m]
      if outside(s, lo, hi) then return {'range', m, fmt(s)} end
      local stored = s
      if TB > 0 then
        local tie = latest[m]
        if rev then tie = POW - 1 - tie end
        stored = s * POW + tie
      end
      pairs_[#pairs_ + 1] = fmt(stored)
      pairs_[#pairs_ + 1] = m
    end
  end
  redis.call('DEL', dk)
  chunked('ZADD', dk, pairs_)
else
  local cmd = 'ZUNIONSTORE'
  if how == 'i' then cmd = 'ZINTERSTORE' end
  local args = {dk, ns}
  for i = 1, ns do args[#args + 1] = sources[i] end
  args[#args + 1] = 'AGGREGATE'
  args[#args + 1] = agg
  redis.call(cmd, unpack(args))
end

if dd then
  local members = redis.call('ZRANGE', dk, 0, -1)
  local found = {}
  for i = 1, ns do
    local vals = data_of(sdata[i], members)
    for j = 1, #members do
      if not found[j] and vals[j] then found[j] = vals[j] end
    end
  end
  redis.call('DEL', dd)
  local flat = {}
  for j = 1, #members do
    if found[j] then
      flat[#flat + 1] = members[j]
      flat[#flat + 1] = found[j]
    end
  end
  chunked('HSET', dd, flat)
end

if dn then
  redis.call('DEL', dn)
  local items = redis.call('ZRANGE', dk, 0, -1, 'WITHSCORES')
  local last = nil
  for j = 2, #items, 2 do
    local b = band_low(tonumber(items[j]))
    if b ~= last then dense_add(dn, b); last = b end
  end
end

expire(at, dk, dd, dn)
trim(dk, dd, dn)
return {'ok', redis.call('ZCARD', dk)}
