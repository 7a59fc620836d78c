-- The rank of one member (a number, or nil when it is not on the board).
--
-- ARGV[6] the member.
local s = redis.call('ZSCORE', K1, ARGV[6])
if not s then return false end
return rank_of(K1, N1, ARGV[6], tonumber(s), s, nil)
