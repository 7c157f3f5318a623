--[[
Purpose: give each node its dense id: the one it has, or the next free one for a node never
seen (an RPUSH onto the id -> identity list, so ids are never reused). The id decides the
node's index chunk, so it is known before the node is written. The class and agent names of
the nodes are added to the names sets in the same step, before any node having them is
written (a regex query finds a name before the nodes it selects).
KEYS[1]  the node ids (hash identity -> dense node id)
KEYS[2]  the node names (list id -> identity, append-only)
KEYS[3]  every lowercased class name indexed (set)
KEYS[4]  every agent name indexed (set)
ARGV[1]  I, the number of identities
ARGV[2]  C, the number of class names
ARGV[3 .. 2 + I]  distinct identities
ARGV[3 + I .. 2 + I + C]  class names, lowercased
ARGV[3 + I + C ..]  agent names
Result:  the ids of the identities, in order
]]
local I, C = tonumber(ARGV[1]), tonumber(ARGV[2])
local names = {unpack(ARGV, 3, 2 + I)}
local ids = redis.call('HMGET', KEYS[1], unpack(names))
local fresh = {}
for i = 1, I do
  if not ids[i] then fresh[#fresh + 1] = i end
end
if #fresh > 0 then
  local list, idOf = {}, {}
  for j, i in ipairs(fresh) do list[j] = names[i] end
  local len = redis.call('RPUSH', KEYS[2], unpack(list))
  for j, i in ipairs(fresh) do
    ids[i] = tostring(len - #fresh + j - 1)
    idOf[#idOf + 1] = names[i]
    idOf[#idOf + 1] = ids[i]
  end
  redis.call('HSET', KEYS[1], unpack(idOf))
end
if C > 0 then redis.call('SADD', KEYS[3], unpack(ARGV, 3 + I, 2 + I + C)) end
if #ARGV > 2 + I + C then redis.call('SADD', KEYS[4], unpack(ARGV, 3 + I + C, #ARGV)) end
return ids
