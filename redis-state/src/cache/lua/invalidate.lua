-- Delete an entry and revoke any fill in flight: for ARGV[1] ms no fill is
-- stored (callers load from the source without caching), so a loader that
-- read the source before the change cannot put the old value back. The
-- callers waiting for a revoked fill are told ('r') to try the lease again.
-- KEYS[1] entry, KEYS[2] lease, KEYS[3] done stream
-- ARGV[1] hold ms (0: just revoke), ARGV[2] done stream ms, ARGV[3] '1': only
-- if KEYS[1] holds a cache entry (its header), else leave everything alone
if ARGV[3] == '1' and redis.call('GETRANGE', KEYS[1], 0, 4) ~= 'rsc1 ' then
  return 0
end
local n = redis.call('DEL', KEYS[1])
local holder = redis.call('GET', KEYS[2])
if tonumber(ARGV[1]) > 0 then
  redis.call('SET', KEYS[2], 'inv', 'PX', ARGV[1])
elseif holder then
  redis.call('DEL', KEYS[2])
end
if holder and holder ~= 'inv' then
  redis.call('XADD', KEYS[3], 'MAXLEN', '1', '*', 'r', '')
  redis.call('PEXPIRE', KEYS[3], ARGV[2])
  redis.call('PUBLISH', KEYS[3], '1')
end
return n
