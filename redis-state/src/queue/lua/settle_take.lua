-- A worker's round: settle the job in hand, then take the next one, in one
-- script (one EVALSHA, one TIME). common.lua, stream/lua/effect.lua,
-- settle_fn.lua and take_fn.lua come first.
-- ARGV[1..6] as for settle (id, token, verdict, error, ms, dead max),
-- ARGV[7] lease ms, ARGV[8] the new token, ARGV[9] max attempts,
-- ARGV[10..] effect commands.
-- Returns the settlement's outcome followed by take's reply:
-- {outcome, id, payload, attempt} or {outcome, false, ms or -1 or -2}.
local dead_max = tonumber(ARGV[6])
local outcome = settle(ARGV[1], ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5]), dead_max, 10)
local r = take(tonumber(ARGV[7]), ARGV[8], tonumber(ARGV[9]), dead_max, false)
table.insert(r, 1, outcome)
return r
