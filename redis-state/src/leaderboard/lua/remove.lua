-- Removes members from every given board, with their data and dense bands.
--
-- ARGV[6] number of boards B, then the number of members M, then the members.
-- Returns, per board, the number of members that were on it.
local nboards = tonumber(ARGV[6])
local nmembers = tonumber(ARGV[7])
local out = {}
for b = 0, nboards - 1 do
  local k, d, n = board_keys(b)
  local removed = 0
  for i = 1, nmembers do
    local member = ARGV[7 + i]
    local old = redis.call('ZSCORE', k, member)
    if old then
      redis.call('ZREM', k, member)
      if d then redis.call('HDEL', d, member) end
      if n then dense_check(k, n, tonumber(old)) end
      removed = removed + 1
    end
  end
  out[#out + 1] = removed
end
return out
