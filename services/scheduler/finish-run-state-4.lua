--[[
Purpose: remove a run's orchestration state, plan, command and lease when its coordinator is
done with it; fenced, so a coordinator that lost the run removes nothing.
KEYS[1]  the run's orchestration state (hash)
KEYS[2]  the run's coordinator lease (string)
KEYS[3]  the run's plan (string)
KEYS[4]  the run's command (string)
ARGV[1]  the coordinator's epoch
Result:  1 when removed; 0 when fenced
]]
if redis.call('HGET', KEYS[1], 'epoch') ~= ARGV[1] then
  return 0
end
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[4])
return 1
