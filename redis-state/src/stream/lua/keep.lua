-- Keep a pending entry with the consumer handling it: reset its
-- idle time, so that no other consumer claims it, but only while it is still
-- pending under this consumer (another worker may have claimed it already).
-- KEYS[1] stream
-- ARGV[1] group, ARGV[2] consumer, ARGV[3] entry id
-- Returns 1 when the entry is still this consumer's, 0 otherwise.
local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[3], ARGV[3], 1, ARGV[2])
if #p == 0 then
  return 0
end
-- JUSTID: the delivery count stays as it is.
redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[3], 'JUSTID')
return 1
