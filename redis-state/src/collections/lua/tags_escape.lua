-- The key segment of a tag: the escaping of redis-state-keys (`%XX` for
-- % : { } * ? [ ] \ # space and control bytes; UTF-8 text kept). Tags are
-- refused before sending unless they are valid UTF-8, so this is the whole
-- rule for them.
local function esc(s)
  return (string.gsub(s, '[%%:{}%*%?%[%]\\# %c]', function(c)
    return string.format('%%%02X', string.byte(c))
  end))
end
