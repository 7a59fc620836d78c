-- One ZSCAN step over a board, with the member data of what it returned.
--
-- ARGV[6] cursor, ARGV[7] COUNT hint.
-- Returns {next cursor, [member, stored, data] * n}.
local k, d = board_keys(0)
local r = redis.call('ZSCAN', k, ARGV[6], 'COUNT', ARGV[7])
local items = r[2]
local out = {r[1]}
local data = nil
if d then
  local members = {}
  for i = 1, #items, 2 do members[#members + 1] = items[i] end
  data = data_of(d, members)
end
for i = 1, #items, 2 do
  out[#out + 1] = items[i]
  out[#out + 1] = items[i + 1]
  if data then out[#out + 1] = data[(i + 1) / 2] else out[#out + 1] = false end
end
return out
