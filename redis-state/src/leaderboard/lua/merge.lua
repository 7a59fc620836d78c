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
-- Returns {'ok', members} or {'range', member, value} (nothing written).
local dk, dd, dn = board_keys(0)
local how, agg = ARGV[6], ARGV[7]
local ns = tonumber(ARGV[8])
local at = ARGV[9]
local lua_sum = ARGV[10] == '1'
local rev = ARGV[11] == '1'
local lo, hi = tonumber(ARGV[12]), tonumber(ARGV[13])
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
      local s = math.floor(x / POW)
      local tie = x - s * POW
      local t = tie
      if rev then t = POW - 1 - tie end
      if acc[m] == nil then
        acc[m], cnt[m], latest[m] = s, 1, t
        order[#order + 1] = m
      else
        acc[m] = acc[m] + s
        cnt[m] = cnt[m] + 1
        if t > latest[m] then latest[m] = t end
      end
    end
  end
  local pairs_ = {}
  for _, m in ipairs(order) do
    if how == 'u' or cnt[m] == ns then
      local s = acc[m]
      if (lo and s < lo) or (hi and s > hi) then return {'range', m, fmt(s)} end
      local tie = latest[m]
      if rev then tie = POW - 1 - tie end
      pairs_[#pairs_ + 1] = fmt(s * POW + tie)
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
