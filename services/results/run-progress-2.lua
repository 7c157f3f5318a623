--[[
Purpose: how far a run got, reading nothing that grows with the run: its state and node count
from the header, how many nodes are final from the final set's size (SCARD), and which of the
given hosts are in the final set (SISMEMBER each).
KEYS[1]  the run's header (hash task, caller, nodes, state)
KEYS[2]  the run's final hosts (set)
ARGV[1], ARGV[2], ...  hosts to look up (a page, at most a thousand)
Result:  {-1} when the run has no header (gone, or created before headers); otherwise
         {RunState number, node count, final host count, then the 0-based positions of the given
         hosts whose result is final}
]]
local header = redis.call('HMGET', KEYS[1], 'nodes', 'state')
if not header[1] then
  return { -1 }
end
local reply = { tonumber(header[2]) or 0, tonumber(header[1]), redis.call('SCARD', KEYS[2]) }
for i = 1, #ARGV do
  if redis.call('SISMEMBER', KEYS[2], ARGV[i]) == 1 then
    reply[#reply + 1] = i - 1
  end
end
return reply
