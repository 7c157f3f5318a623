--[[
Purpose: tell which of the given hosts are not nodes of a run, reading nothing that grows with
the run (HEXISTS per host).
KEYS[1]  the run's node results (hash host -> NodeResult proto JSON; an entry per node)
ARGV[1], ARGV[2], ...  hosts
Result:  the 0-based positions of the hosts that have no entry (empty when all are nodes)
]]
local n = #ARGV
local unknown = {}
for i = 0, n - 1 do
  if redis.call('HEXISTS', KEYS[1], ARGV[1 + 1 * i]) == 0 then
    unknown[#unknown + 1] = i
  end
end
return unknown
