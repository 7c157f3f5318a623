import { nodeStateToJSON } from '../../gen/baton/v1/run';
import { LuaScript } from '../../lib/lua-script';
import { FINAL_NODE_STATES } from '../../lib/run-states';

/**
 * The Lua scripts of the run store. Each declares every key it touches. The record, results,
 * briefs and event log of one run share the `{<task id>}` hash tag; CREATE_RUN_SCRIPT and
 * DELETE_RUN_SCRIPT also write the global indexes (`runs`, `runs:task:<task>`,
 * `runs:caller:<caller>`) in the same atomic step, so an index entry exists exactly while its
 * run does. That ties them to one Redis (or one Cluster slot for all runs); splitting them for
 * Cluster would mean writing the indexes first and tolerating stale entries, which `listRuns`
 * and the retention sweep already do.
 *
 * Every XADD trims the run's log to about ARGV's cap (MAXLEN ~, see `eventLogCap`), so a run
 * whose nodes flood it with reports cannot fill Redis; trimming drops the oldest events.
 *
 * Beside each node's result a run keeps its brief (run-brief.ts): the result without its
 * output, `<node>,<state>,<exitcode>,<completed>,<runtime>,<start>,<statuscode>[,<tail>]` (the
 * host's position in the run's sorted nodes; NodeState number; integer; 1 or 0; seconds; epoch
 * ms or empty; integer; `["<task>","<callerid>"]` only when they differ from the run's), so a
 * slim read never reads output (issue 5 point 5). The brief hash is created with the run and
 * written in the same step as each result; a run created before briefs existed has none and
 * never gets one (a partial brief hash would hide results).
 */

/** Proto JSON names of the final node states, as a Lua table constructor. */
const FINAL_NODE_STATES_LUA = `{ ${[...FINAL_NODE_STATES].map((s) => `${nodeStateToJSON(s)} = true`).join(', ')} }`;

/** Creates a run's record, its pending node results and its first event, all or nothing. */
export const CREATE_RUN_SCRIPT = new LuaScript(
  'create-run',
  `--[[
Purpose: create a run atomically: its record, one result per node and its first event, or
nothing at all when the run exists already.
KEYS[1]  the run record (string)
KEYS[2]  the run's node results (hash host -> NodeResult proto JSON)
KEYS[3]  the run's event log (stream)
KEYS[4]  the runs index (zset task id -> creation time in ms)
KEYS[5]  the index of the run's task (zset, same)
KEYS[6]  the index of the run's caller (zset, same)
KEYS[7]  the hosts of the run with a final result (set)
KEYS[8]  the run's node briefs (hash host -> brief, encoded as above)
ARGV[1]  the Run as proto JSON
ARGV[2]  the first RunEvent (RunStateChanged) as proto JSON, without id
ARGV[3]  the task id (the member of every index)
ARGV[4]  the run's creation time in ms (its score in every index)
ARGV[5]  the cap of the event log (entries)
ARGV[6], ARGV[7], ARGV[8], ...  host, NodeResult proto JSON, its brief: one triple per node
Result:  1 when created; 0 when KEYS[1] exists (nothing written)
]]
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
-- Leftovers of a run that no longer has a record must not leak into the new one.
redis.call('DEL', KEYS[2], KEYS[3], KEYS[7], KEYS[8])
redis.call('SET', KEYS[1], ARGV[1])
for i = 6, #ARGV, 3 do
  redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1])
  redis.call('HSET', KEYS[8], ARGV[i], ARGV[i + 2])
end
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[5], '*', 'event', ARGV[2])
for k = 4, 6 do
  redis.call('ZADD', KEYS[k], ARGV[4], ARGV[3])
end
return 1
`,
);

/** Compare-and-set of node results, each change appended to the event log in the same step. */
export const RECORD_RESULTS_SCRIPT = new LuaScript(
  'record-results',
  `--[[
Purpose: record node results. Each result replaces the stored one unless the stored one is
final and the new one is not final, or the new one is identical; each replacement appends a
RunEvent in the same atomic step, so the event log never misses or duplicates a change.
KEYS[1]  the run's node results (hash host -> NodeResult proto JSON)
KEYS[2]  the run's event log (stream)
KEYS[3]  the run record (string): nothing is written when it is gone (swept by retention)
KEYS[4]  the hosts of the run with a final result (set), kept here so that knowing whether the
         run is done never means reading every result
KEYS[5]  the run's node briefs (hash host -> brief, encoded as above): each brief replaced
         with its result, when the run has this hash (runs created before briefs have none)
ARGV[1]  n, the number of results
ARGV[2]  the cap of the event log (entries)
ARGV[3 + 5i .. 7 + 5i], for i = 0 .. n-1:
         host; NodeResult as canonical proto JSON; '1' when its state is final, else '0';
         the RunEvent (node_result) to append when it is recorded, without id; its brief
Result:  {changed, final}: the number of results that changed what was stored and how many
         hosts now have a final result; {-1, 0} when the run does not exist
]]
if redis.call('EXISTS', KEYS[3]) == 0 then
  return {-1, 0}
end
local final = ${FINAL_NODE_STATES_LUA}
local briefed = redis.call('EXISTS', KEYS[5]) == 1
local changed = 0
for i = 0, tonumber(ARGV[1]) - 1 do
  local base = 3 + 5 * i
  local host, result, newFinal, event = ARGV[base], ARGV[base + 1], ARGV[base + 2] == '1', ARGV[base + 3]
  local old = redis.call('HGET', KEYS[1], host)
  local keep = false
  if old == result then
    keep = true
  elseif old and not newFinal then
    local ok, decoded = pcall(cjson.decode, old)
    -- A late RUNNING (or any non-final report) never overwrites a final result.
    keep = ok and type(decoded) == 'table' and final[decoded.state] == true
  end
  if not keep then
    redis.call('HSET', KEYS[1], host, result)
    if briefed then
      redis.call('HSET', KEYS[5], host, ARGV[base + 4])
    end
    redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '*', 'event', event)
    if newFinal then
      redis.call('SADD', KEYS[4], host)
    else
      redis.call('SREM', KEYS[4], host)
    end
    changed = changed + 1
  end
end
return {changed, redis.call('SCARD', KEYS[4])}
`,
);

/** Optimistic compare-and-set of a run record, with its RunStateChanged event. */
export const REPLACE_RUN_SCRIPT = new LuaScript(
  'replace-run',
  `--[[
Purpose: replace a run record only if it has not changed since it was read (optimistic
concurrency between the scheduler's UpdateRunState and the finalisation after results), and
append the matching event in the same atomic step.
KEYS[1]  the run record (string)
KEYS[2]  the run's event log (stream)
ARGV[1]  the record exactly as it was read
ARGV[2]  the new record, Run proto JSON
ARGV[3]  the RunEvent (run_state_changed) to append, without id
ARGV[4]  the cap of the event log (entries)
Result:  1 when replaced; 0 when the record changed meanwhile (re-read and retry);
         -1 when the run does not exist
]]
local current = redis.call('GET', KEYS[1])
if not current then
  return -1
end
if current ~= ARGV[1] then
  return 0
end
redis.call('SET', KEYS[1], ARGV[2])
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[4], '*', 'event', ARGV[3])
return 1
`,
);

/** One page of a runs index within a score range, newest first, after a given run. */
export const RUNS_PAGE_SCRIPT = new LuaScript(
  'runs-page',
  `--[[
Purpose: read the page of a runs index that follows a given run (or the first page), newest
first, within a score range, in one step, so runs created meanwhile (added at the top)
neither repeat nor hide entries. Order: score descending, then task id descending (ZREVRANGE).
KEYS[1]  the runs index (zset task id -> creation time in ms)
ARGV[1]  task id of the last run of the previous page; '' for the first page
ARGV[2]  that run's score (used when the run has left the index)
ARGV[3]  how many entries to return
ARGV[4]  the smallest score to return, inclusive, or '-inf'
ARGV[5]  the largest score to return, inclusive, or '+inf'
Result:  flat array task id, score, task id, score, ...
]]
local key, after, count = KEYS[1], ARGV[1], tonumber(ARGV[3])
local minArg, maxArg = ARGV[4], ARGV[5]
local min = tonumber(minArg) or -math.huge
if after == '' then
  return redis.call('ZREVRANGEBYSCORE', key, maxArg, minArg, 'WITHSCORES', 'LIMIT', 0, count)
end
local out = {}
local rank = redis.call('ZREVRANK', key, after)
if rank then
  local flat = redis.call('ZREVRANGE', key, rank + 1, rank + count, 'WITHSCORES')
  for i = 1, #flat, 2 do
    if tonumber(flat[i + 1]) < min then break end
    out[#out + 1] = flat[i]
    out[#out + 1] = flat[i + 1]
  end
  return out
end
-- The run left the index (swept): continue from its position, ties broken by task id.
local score = ARGV[2]
if tonumber(score) < min then return out end
local same = redis.call('ZRANGEBYSCORE', key, score, score)
for i = #same, 1, -1 do
  if #out >= 2 * count then break end
  if same[i] < after then
    out[#out + 1] = same[i]
    out[#out + 1] = score
  end
end
local left = count - #out / 2
if left > 0 then
  local rest = redis.call('ZREVRANGEBYSCORE', key, '(' .. score, minArg, 'WITHSCORES', 'LIMIT', 0, left)
  for i = 1, #rest do out[#out + 1] = rest[i] end
end
return out
`,
);

/** Deletes one run (record, results, briefs, event log, index entries) if its record is as read. */
export const DELETE_RUN_SCRIPT = new LuaScript(
  'delete-run',
  `--[[
Purpose: remove an expired run entirely, in one atomic step: its record, node results and
briefs, event log and its entries in every index, but only if the record is still exactly as the sweep read
it (a run that changed meanwhile, for example one that just ended, is judged again next time).
UNLINK frees large hashes and streams in the background, so a big run never blocks Redis.
KEYS[1]  the run record (string)
KEYS[2]  the run's node results (hash)
KEYS[3]  the run's event log (stream)
KEYS[4]  the hosts of the run with a final result (set)
KEYS[5]  the run's node briefs (hash)
KEYS[6]  the runs index (zset)
KEYS[7], KEYS[8], ...  the run's task and caller indexes (zsets), when its record is known
ARGV[1]  the task id
ARGV[2]  the record exactly as read; '' when it was missing (a stale index entry)
Result:  1 when removed; 0 when the record changed meanwhile (nothing removed)
]]
local current = redis.call('GET', KEYS[1])
if (current or '') ~= ARGV[2] then
  return 0
end
redis.call('UNLINK', KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5])
for k = 6, #KEYS do
  redis.call('ZREM', KEYS[k], ARGV[1])
end
return 1
`,
);
