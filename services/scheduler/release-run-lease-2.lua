--[[
Purpose: end a run's coordinator lease now (the coordinating scheduler stops) unless the caller's
epoch is no longer the run's.
KEYS[1]  the run's orchestration state (hash)
KEYS[2]  the run's coordinator lease (string)
ARGV[1]  the coordinator's epoch
Result:  1 when released; 0 when fenced
]]
if redis.call('HGET', KEYS[1], 'epoch') ~= ARGV[1] then
  return 0
end
redis.call('DEL', KEYS[2])
return 1
