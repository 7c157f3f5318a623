--[[
Purpose: give back a RunTask request id whose run could not be created, so that a retry may start
one; only while the id still names that run, in one step, so a newer claim is never removed.
KEYS[1]  the request id's idempotency key (string: the task id the request started)
ARGV[1]  the task id of the run that could not be created
Result:  1 when given back; 0 when the key names another run or is gone
]]
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
