--[[
Purpose: create a run's orchestration state, plan and command, and give the caller the run's
coordinator lease with epoch 1; nothing when the state exists already.
KEYS[1]  the run's orchestration state (hash)
KEYS[2]  the run's coordinator lease (string)
KEYS[3]  the run's plan (string, JSON array of nodes in batch order)
KEYS[4]  the run's command (string, RunCommand proto JSON)
ARGV[1]  the coordinating replica's id
ARGV[2]  the lease's time to live, in ms
ARGV[3]  the plan
ARGV[4]  the command
ARGV[5], ARGV[6], ...  field, value pairs of the state
Result:  1 when created; 0 when the state existed (nothing written)
]]
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
redis.call('HSET', KEYS[1], 'epoch', 1, 'coordinator', ARGV[1], unpack(ARGV, 5))
redis.call('SET', KEYS[3], ARGV[3])
redis.call('SET', KEYS[4], ARGV[4])
redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
return 1
