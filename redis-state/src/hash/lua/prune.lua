
-- Forgets the index entries and expiry bookkeeping of up to `limit` entities
-- that expired more than a second ago, in one scope (a bounded sweep: no
-- write needs to come by).
--
-- KEYS[1] the expiry ZSET (in the entity's place, which the shared helpers
-- leave to KEYS[1]), KEYS[2 .. 1+n] the index keys, then the expiry ZSET and
-- HASH of the scope
-- ARGV: n, unique ('1'/'0') * n, limit
-- Returns {pruned, still due}.
local n = tonumber(ARGV[1])
local uniques = {}
for i = 1, n do uniques[i] = index_kind(ARGV[1 + i]) end
local limit = tonumber(ARGV[2 + n])
local exp_key, expv_key = KEYS[n + 2], KEYS[n + 3]
local before = now_ms() - 1000
local pruned = 0
if limit > 0 then
  pruned = prune(before, limit, n, uniques, exp_key, expv_key)
end
return {pruned, redis.call('ZCOUNT', exp_key, '-inf', '(' .. before)}
