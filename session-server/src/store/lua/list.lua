-- A user's live session records (in no particular order); prunes as it reads.
-- KEYS: 1 sessions hash
local live = prune(KEYS[1])
settle(KEYS[1], live)
local out = {}
for _, s in ipairs(live) do
  table.insert(out, s[2])
end
return out
