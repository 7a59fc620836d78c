-- Adds tags to an item: the item's set of tags and each tag's set of items,
-- atomically. Refuses (writing nothing) when the item would hold more than
-- the limit.
--
-- KEYS[1] the item's tags, KEYS[2..] the tags' item sets (in ARGV order)
-- ARGV[1] the limit, ARGV[2] the item, ARGV[3..] the tags
-- Members go to SMISMEMBER and SADD 500 at a time (Lua's unpack is small).
-- Returns {0, tags the item holds} or {-1, tags it would hold}.
local item_key, item = KEYS[1], ARGV[2]
local n = redis.call('SCARD', item_key)
local new = 0
for i = 3, #ARGV, 500 do
  local last = math.min(i + 499, #ARGV)
  local present = redis.call('SMISMEMBER', item_key, unpack(ARGV, i, last))
  for j = 1, #present do new = new + 1 - present[j] end
end
if n + new > tonumber(ARGV[1]) then return {-1, n + new} end
-- The tags' sets first: a key of another type there fails the call after
-- undoing what it added, so nothing is half written.
local err = add_to_tags(item)
if err then return err end
-- The item's key answered SCARD and SMISMEMBER: it is a set.
for i = 3, #ARGV, 500 do
  redis.call('SADD', item_key, unpack(ARGV, i, math.min(i + 499, #ARGV)))
end
return {0, n + new}
