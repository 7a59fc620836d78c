-- Give the fill lease back and wake the waiters, if any (a lease marked
-- `<token>~w`, see `acquire`): after a failed load (ARGV[4] = 'e', ARGV[2]
-- the message) or a load that found nothing to cache (ARGV[4] = 'n').
-- KEYS[1] lease, KEYS[2] done stream; ARGV[1] token, ARGV[3] done stream ms
local holder = redis.call('GET', KEYS[1])
local waited = holder == ARGV[1] .. '~w'
if holder ~= ARGV[1] and not waited then return 0 end
redis.call('DEL', KEYS[1])
if waited then
  redis.call('XADD', KEYS[2], 'MAXLEN', '1', '*', ARGV[4], ARGV[2])
  redis.call('PEXPIRE', KEYS[2], ARGV[3])
  redis.call('PUBLISH', KEYS[2], '1')
end
return 1
