import { LuaScript } from '../../lib/lua-script';

/**
 * The Lua scripts of a run's orchestration state (run-state.ts). Every key of one run carries the
 * run's `{<task id>}` hash tag, so each script touches one Redis Cluster slot; the global set of
 * active runs is written outside them (a stale entry there is dropped by the scan that finds it).
 * Each script that changes the state first checks the fencing epoch: a coordinator whose run was
 * taken over changes nothing.
 */

/** Creates a run's orchestration state and its coordinator lease. */
export const BEGIN_RUN_STATE_SCRIPT = new LuaScript(
  'begin-run-state',
  `--[[
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
`,
);

/** Moves a run's state on (fenced by epoch, and refused after a cancel when it sends), renewing the lease. */
export const TRANSITION_RUN_STATE_SCRIPT = new LuaScript(
  'transition-run-state',
  `--[[
Purpose: change a run's orchestration state as its coordinator, renewing the lease in the same
step. Fenced: a coordinator whose epoch is no longer the run's changes nothing. A change that
leads to run commands being sent ('send') is refused once the run is cancelled, so no batch goes
out after CancelRun set the flag.
KEYS[1]  the run's orchestration state (hash)
KEYS[2]  the run's coordinator lease (string)
ARGV[1]  the coordinator's epoch
ARGV[2]  the coordinator's replica id
ARGV[3]  the lease's time to live, in ms
ARGV[4]  'send' when the change precedes sending run commands, else 'keep'
ARGV[5], ARGV[6], ...  field, value pairs to set
Result:  1 when changed; 0 when fenced (another epoch, or the state is gone); -1 when cancelled
]]
if redis.call('HGET', KEYS[1], 'epoch') ~= ARGV[1] then
  return 0
end
if ARGV[4] == 'send' and redis.call('HGET', KEYS[1], 'cancel') == '1' then
  return -1
end
if #ARGV >= 5 then
  redis.call('HSET', KEYS[1], unpack(ARGV, 5))
end
redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])
return 1
`,
);

/** Renews a coordinator lease and tells whether the run was cancelled. */
export const RENEW_RUN_LEASE_SCRIPT = new LuaScript(
  'renew-run-lease',
  `--[[
Purpose: renew a run's coordinator lease while the caller's epoch is still the run's (also after
the lease lapsed, as long as nobody took the run over), and tell whether CancelRun set the flag.
KEYS[1]  the run's orchestration state (hash)
KEYS[2]  the run's coordinator lease (string)
ARGV[1]  the coordinator's epoch
ARGV[2]  the coordinator's replica id
ARGV[3]  the lease's time to live, in ms
Result:  {1, cancelled (1 or 0)} when renewed; {0, 0} when fenced (another epoch, or no state)
]]
if redis.call('HGET', KEYS[1], 'epoch') ~= ARGV[1] then
  return {0, 0}
end
redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])
if redis.call('HGET', KEYS[1], 'cancel') == '1' then
  return {1, 1}
end
return {1, 0}
`,
);

/** Gives a run's coordinator lease up, so another scheduler takes the run over at once. */
export const RELEASE_RUN_LEASE_SCRIPT = new LuaScript(
  'release-run-lease',
  `--[[
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
`,
);

/** Takes over a run whose coordinator lease lapsed. */
export const TAKE_OVER_RUN_SCRIPT = new LuaScript(
  'take-over-run',
  `--[[
Purpose: make the caller a run's coordinator when the run's lease has lapsed: a new fencing
epoch (the old coordinator, should it still live, is fenced off by it) and a fresh lease.
KEYS[1]  the run's orchestration state (hash)
KEYS[2]  the run's coordinator lease (string)
ARGV[1]  the new coordinator's replica id
ARGV[2]  the lease's time to live, in ms
Result:  {1, epoch} when taken over; {0} while the lease is held; {-1} when the run has no state
]]
if redis.call('EXISTS', KEYS[2]) == 1 then
  return {0}
end
if redis.call('EXISTS', KEYS[1]) == 0 then
  return {-1}
end
local epoch = redis.call('HINCRBY', KEYS[1], 'epoch', 1)
redis.call('HSET', KEYS[1], 'coordinator', ARGV[1], 'sending', '0')
redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
return {1, epoch}
`,
);

/** Sets a run's cancel flag and answers where the run stands. */
export const CANCEL_RUN_STATE_SCRIPT = new LuaScript(
  'cancel-run-state',
  `--[[
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
`,
);

/** Removes a run's orchestration state once the run needs no coordinator. */
export const FINISH_RUN_STATE_SCRIPT = new LuaScript(
  'finish-run-state',
  `--[[
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
`,
);
