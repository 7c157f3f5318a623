--[[
Purpose: give node_result events their output, which the event log does not hold: for each
event, the node's stored result when that event recorded it (it is still the node's current
result), else '' (a later result replaced it; the event keeps its own fields, without output).
KEYS[1]  the run's node results (hash host -> NodeResult proto JSON)
KEYS[2]  the run's host -> id of the event that recorded its current result (hash)
ARGV[1], ARGV[2], ...  event id, host: one pair per node_result event
Result:  one entry per pair: the NodeResult proto JSON, or ''
]]
local out = {}
for i = 1, #ARGV, 2 do
  local result = ''
  if redis.call('HGET', KEYS[2], ARGV[i + 1]) == ARGV[i] then
    result = redis.call('HGET', KEYS[1], ARGV[i + 1]) or ''
  end
  out[#out + 1] = result
end
return out
