--[[
Purpose: set a run's cancel flag (every later 'send' transition is refused) and answer how far
the run got, in the same step (the coordinator may remove the state right after).
KEYS[1]  the run's orchestration state (hash)
KEYS[2]  the run's plan (string)
Result:  {phase, batch, sending, batch_size, plan} after setting the flag; {} when the run has no state
]]
if redis.call('EXISTS', KEYS[1]) == 0 then
  return {}
end
redis.call('HSET', KEYS[1], 'cancel', '1')
local point = redis.call('HMGET', KEYS[1], 'phase', 'batch', 'sending', 'batch_size')
point[5] = redis.call('GET', KEYS[2])
return point
