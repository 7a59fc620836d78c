-- Shared by the tag scripts.
--
-- The key segment of a tag: the escaping of redis-state-keys (`%XX` for
-- % : { } * ? [ ] \ # space and control bytes; UTF-8 text kept). Tags are
-- refused before sending unless they are valid UTF-8, so this is the whole
-- rule for them.
local function esc(s)
  return (string.gsub(s, '[%%:{}%*%?%[%]\\# %c]', function(c)
    return string.format('%%%02X', string.byte(c))
  end))
end

-- Adds `item` to the sets KEYS[2..]; when one of them is a key of another
-- type, removes it again from those it was added to and returns the error
-- (nothing is half written), else nil.
local function add_to_tags(item)
  local added = {}
  for i = 2, #KEYS do
    local r = redis.pcall('SADD', KEYS[i], item)
    if type(r) == 'table' and r.err then
      for j = 2, i - 1 do
        if added[j] == 1 then redis.call('SREM', KEYS[j], item) end
      end
      return r
    end
    added[i] = r
  end
  return nil
end
