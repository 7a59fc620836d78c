-- One ZSCAN step over a board, with the member data of what it returned.
--
-- ARGV[6] cursor, ARGV[7] COUNT hint.
-- Returns {next cursor, the step's (member, stored) list, the data of those
-- members in order or false}.
local r = redis.call('ZSCAN', K1, ARGV[6], 'COUNT', ARGV[7])
local items = r[2]
local data = false
if D1 and #items > 0 then
  local members = {}
  for i = 1, #items, 2 do members[#members + 1] = items[i] end
  data = data_of(D1, members)
end
return {r[1], items, data}
