-- Adds tags to an item: the item's set of tags and each tag's set of items,
-- atomically. Refuses (writing nothing) when the item would hold more than
-- the limit.
--
-- KEYS[1] the item's tags, KEYS[2..] the tags' item sets (in ARGV order)
-- ARGV[1] the limit, ARGV[2] the item, ARGV[3..] the tags
-- Returns {0, tags the item holds} or {-1, tags it would hold}.
local item_key, item = KEYS[1], ARGV[2]
local n = redis.call('SCARD', item_key)
local new = 0
for i = 3, #ARGV do
  if redis.call('SISMEMBER', item_key, ARGV[i]) == 0 then new = new + 1 end
end
if n + new > tonumber(ARGV[1]) then return {-1, n + new} end
for i = 3, #ARGV do
  redis.call('SADD', KEYS[i - 1], item)
  redis.call('SADD', item_key, ARGV[i])
end
return {0, n + new}
