--[[
Purpose: give a run created before headers existed its header, built from its record as read,
only if the record is still exactly as read (a state change meanwhile would leave the header's
state behind the record's). An existing header is left as it is.
KEYS[1]  the run record (string)
KEYS[2]  the run's header (hash task, caller, nodes, state)
ARGV[1]  the record exactly as it was read
ARGV[2], ARGV[3], ARGV[4], ARGV[5]  task, caller, node count, RunState number
Result:  1 when the run has a header; 0 when the record changed or is gone (read it again)
]]
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return 0
end
if redis.call('EXISTS', KEYS[2]) == 0 then
  redis.call('HSET', KEYS[2], 'task', ARGV[2], 'caller', ARGV[3], 'nodes', ARGV[4], 'state', ARGV[5])
end
return 1
