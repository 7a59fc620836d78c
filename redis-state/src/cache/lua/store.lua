-- Write an entry from the source of truth (set, write-through,
-- write-behind). A fill in flight loaded an older value: its lease is
-- revoked, and callers waiting for it get this value.
-- KEYS[1] entry, KEYS[2] lease, KEYS[3] done stream
-- ARGV[1] envelope, ARGV[2] px, ARGV[3] done stream ms
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
local holder = redis.call('GET', KEYS[2])
if holder and holder ~= 'inv' then
  redis.call('DEL', KEYS[2])
  redis.call('XADD', KEYS[3], 'MAXLEN', '1', '*', 'v', ARGV[1])
  redis.call('PEXPIRE', KEYS[3], ARGV[3])
  redis.call('PUBLISH', KEYS[3], '1')
end
return 1
