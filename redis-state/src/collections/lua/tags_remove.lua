-- Removes tags from an item, on both sides, atomically.
--
-- KEYS[1] the item's tags, KEYS[2..] the tags' item sets (in ARGV order)
-- ARGV[1] the item, ARGV[2..] the tags
-- Returns {0, tags the item holds after}.
local item_key, item = KEYS[1], ARGV[1]
-- The item's key first, so a key of another type there fails before any
-- write; a tag's key of another type cannot hold the item, and is skipped.
for i = 2, #ARGV do
  redis.call('SREM', item_key, ARGV[i])
end
for i = 2, #KEYS do
  redis.pcall('SREM', KEYS[i], item)
end
return {0, redis.call('SCARD', item_key)}
