-- The standing of given members on one board.
--
-- ARGV[6] what: 's' score and rank, 'e' score, rank and data, 'p'
-- percentile; then the members.
-- Returns per member: 's'/'e': stored (or false), rank (or false), data (or
-- false); 'p': stored (or false), members worse, members in the same band,
-- members on the board.
local k, d, n = K1, D1, N1
local what = ARGV[6]
local out = {}
local card = nil
for i = 7, #ARGV do
  local member = ARGV[i]
  local s = redis.call('ZSCORE', k, member)
  if not s then
    out[#out + 1] = false
    out[#out + 1] = false
    out[#out + 1] = false
    if what == 'p' then out[#out + 1] = false end
  elseif what == 'p' then
    local x = tonumber(s)
    if not card then card = redis.call('ZCARD', k) end
    out[#out + 1] = s
    out[#out + 1] = worse_count(k, x, s)
    out[#out + 1] = band_count(k, x, s)
    out[#out + 1] = card
  else
    out[#out + 1] = s
    out[#out + 1] = rank_of(k, n, member, tonumber(s), s, nil)
    if what == 'e' and d then
      out[#out + 1] = redis.call('HGET', d, member)
    else
      out[#out + 1] = false
    end
  end
end
return out
