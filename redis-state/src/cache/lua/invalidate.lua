-- Delete an entry and revoke any fill in flight: for ARGV[1] ms no fill is
-- stored (callers load from the source without caching), so a loader that
-- read the source before the change cannot put the old value back.
-- KEYS[1] entry, KEYS[2] lease; ARGV[1] hold ms (0: just revoke)
local n = redis.call('DEL', KEYS[1])
if tonumber(ARGV[1]) > 0 then
  redis.call('SET', KEYS[2], 'inv', 'PX', ARGV[1])
else
  redis.call('DEL', KEYS[2])
end
return n
