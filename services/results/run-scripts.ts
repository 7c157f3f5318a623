import { LuaScript } from '../../lib/lua-script';

/**
 * The Lua scripts of the run store. Each declares every key it touches. The record, results,
 * briefs, header, final set, result events and event log of one run share the `{<task id>}`
 * hash tag; CREATE_RUN_SCRIPT and
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
 * slim read never reads output. The brief hash is created with the run and
 * written in the same step as each result, keeping the position CreateRun gave it (so recording
 * never looks the host up in the run's nodes); a run created before briefs existed has none and
 * never gets one (a partial brief hash would hide results).
 */

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
KEYS[9]  the run's header (hash: task, caller, nodes, state; services/results/run-header.ts)
KEYS[10] the run's host -> id of the event of its current result (hash)
ARGV[1]  the Run as proto JSON
ARGV[2]  the first RunEvent (RunStateChanged) as proto JSON, without id
ARGV[3]  the task id (the member of every index)
ARGV[4]  the run's creation time in ms (its score in every index)
ARGV[5]  the cap of the event log (entries)
ARGV[6], ARGV[7], ARGV[8], ARGV[9]  the header: task, caller, node count, RunState number
ARGV[10 .. 9 + 2n]  host, NodeResult proto JSON: one pair per node (n = ARGV[8])
ARGV[10 + 2n .. 9 + 4n]  host, its brief: one pair per node
Result:  1 when created; 0 when KEYS[1] exists (nothing written)
]]
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
-- Leftovers of a run that no longer has a record must not leak into the new one.
redis.call('DEL', KEYS[2], KEYS[3], KEYS[7], KEYS[8], KEYS[9], KEYS[10])
redis.call('SET', KEYS[1], ARGV[1])
redis.call('HSET', KEYS[9], 'task', ARGV[6], 'caller', ARGV[7], 'nodes', ARGV[8], 'state', ARGV[9])
-- Many fields per HSET (a call per field made a 100,000-node run hold Redis for seconds),
-- in slices that stay far below Lua's limit on unpacked values.
local n = tonumber(ARGV[8])
for k, key in ipairs({KEYS[2], KEYS[8]}) do
  local from = 10 + (k - 1) * 2 * n
  local last = from + 2 * n - 1
  for i = from, last, 2000 do
    redis.call('HSET', key, unpack(ARGV, i, math.min(i + 1999, last)))
  end
end
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[5], '*', 'event', ARGV[2])
for k = 4, 6 do
  redis.call('ZADD', KEYS[k], ARGV[4], ARGV[3])
end
return 1
`,
);

/** Lua that collects in `unknown` the 0-based positions i < n whose host, ARGV[first + stride * i], has no entry in KEYS[1]. */
function unknownHostsLua(first: number, stride: number): string {
  return `local unknown = {}
for i = 0, n - 1 do
  if redis.call('HEXISTS', KEYS[1], ARGV[${first} + ${stride} * i]) == 0 then
    unknown[#unknown + 1] = i
  end
end`;
}

/**
 * Records a batch of node results of one run, each change appended to the event log in the
 * same step. Nothing it reads grows with the run: the header instead of the record, HEXISTS on
 * the results hash for membership, SISMEMBER on the final set instead of decoding the stored
 * result, the node's position from its own brief.
 */
export const RECORD_RESULTS_SCRIPT = new LuaScript(
  'record-results',
  `--[[
Purpose: record node results of one run, at a cost per result that does not depend on the
number of nodes. Checks first, then writes: when any host is not a node of the run nothing is
written. Each result replaces the stored one unless the stored one is final and the new one is
not final or is a NO_RESPONSE (a real answer is never replaced by the lack of one, while a late
answer replaces a NO_RESPONSE), or the new one is identical; each replacement appends a RunEvent in the same atomic
step, so the event log never misses or duplicates a change. The event holds the result without
its output (the output is stored once, in KEYS[1]); KEYS[6] remembers which event recorded the
node's current result, so a reader gives that event its output.
KEYS[1]  the run's node results (hash host -> NodeResult proto JSON): CreateRun gives every node
         an entry, so HEXISTS answers membership
KEYS[2]  the run's event log (stream)
KEYS[3]  the run's header (hash task, caller, nodes, state)
KEYS[4]  the hosts of the run with a final result (set), kept here so that knowing whether the
         run is done never means reading every result
KEYS[5]  the run's node briefs (hash host -> brief, encoded as above): each brief replaced
         with its result, when the run has this hash (runs created before briefs have none)
KEYS[6]  the run's host -> id of the event that recorded its current result (hash)
ARGV[1]  n, the number of results
ARGV[2], ARGV[3], ARGV[4]  the header the results were built from: task, caller, node count
ARGV[5]  the cap of the event log (entries)
ARGV[6 + 5i .. 10 + 5i], for i = 0 .. n-1:
         host; NodeResult as canonical proto JSON; '1' when its state is final, '2' when it is
         final but yields to a stored final result (NO_RESPONSE), else '0';
         the RunEvent (node_result, without output) to append when it is recorded, without id;
         its brief without the leading node position (kept from the stored brief)
Result:  {changed, final, state}: the number of results that changed what was stored, how many
         hosts now have a final result, and the run's state (RunState number) from the header;
         {-1} when the run has no header (removed, or created before headers: read the record);
         {-2} when the header differs from ARGV[2..4] (the caller's copy is stale);
         {-3, i, ...} the 0-based positions of the results whose host is not a node of the run
]]
local header = redis.call('HMGET', KEYS[3], 'task', 'caller', 'nodes', 'state')
if not header[1] then
  return {-1}
end
if header[1] ~= ARGV[2] or header[2] ~= ARGV[3] or header[3] ~= ARGV[4] then
  return {-2}
end
local n = tonumber(ARGV[1])
${unknownHostsLua(6, 5)}
if #unknown > 0 then
  table.insert(unknown, 1, -3)
  return unknown
end
local briefed = redis.call('EXISTS', KEYS[5]) == 1
local changed = 0
for i = 0, n - 1 do
  local base = 6 + 5 * i
  local host, result, flag = ARGV[base], ARGV[base + 1], ARGV[base + 2]
  local newFinal = flag ~= '0'
  -- A late RUNNING (or any non-final report), or a NO_RESPONSE, never overwrites a final result.
  local keep = flag ~= '1' and redis.call('SISMEMBER', KEYS[4], host) == 1
  if not keep then
    keep = redis.call('HGET', KEYS[1], host) == result
  end
  if not keep then
    redis.call('HSET', KEYS[1], host, result)
    if briefed then
      local position = string.match(redis.call('HGET', KEYS[5], host) or '', '^%d+')
      if position then
        redis.call('HSET', KEYS[5], host, position .. ',' .. ARGV[base + 4])
      end
    end
    local id = redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[5], '*', 'event', ARGV[base + 3])
    redis.call('HSET', KEYS[6], host, id)
    if newFinal then
      redis.call('SADD', KEYS[4], host)
    else
      redis.call('SREM', KEYS[4], host)
    end
    changed = changed + 1
  end
end
return {changed, redis.call('SCARD', KEYS[4]), tonumber(header[4]) or 0}
`,
);

/** The positions of hosts that are not nodes of a run: the check before a request's first write when it takes several script calls. */
export const UNKNOWN_HOSTS_SCRIPT = new LuaScript(
  'unknown-hosts',
  `--[[
Purpose: tell which of the given hosts are not nodes of a run, reading nothing that grows with
the run (HEXISTS per host).
KEYS[1]  the run's node results (hash host -> NodeResult proto JSON; an entry per node)
ARGV[1], ARGV[2], ...  hosts
Result:  the 0-based positions of the hosts that have no entry (empty when all are nodes)
]]
local n = #ARGV
${unknownHostsLua(1, 1)}
return unknown
`,
);

/** The output of node_result events, from the results they recorded. */
export const EVENT_OUTPUTS_SCRIPT = new LuaScript(
  'event-outputs',
  `--[[
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
`,
);

/** Gives a run created before headers existed its header, from its record. */
export const WRITE_HEADER_SCRIPT = new LuaScript(
  'write-header',
  `--[[
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
KEYS[3]  the run's header (hash): its state follows the record's, when the run has one
ARGV[1]  the record exactly as it was read
ARGV[2]  the new record, Run proto JSON
ARGV[3]  the RunEvent (run_state_changed) to append, without id
ARGV[4]  the cap of the event log (entries)
ARGV[5]  the new record's state (RunState number)
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
if redis.call('EXISTS', KEYS[3]) == 1 then
  redis.call('HSET', KEYS[3], 'state', ARGV[5])
end
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
Purpose: remove an expired run entirely, in one atomic step: its record, node results,
briefs, header, event log and its entries in every index, but only if the record is still exactly as the sweep read
it (a run that changed meanwhile, for example one that just ended, is judged again next time).
UNLINK frees large hashes and streams in the background, so a big run never blocks Redis.
KEYS[1]  the run record (string)
KEYS[2]  the run's node results (hash)
KEYS[3]  the run's event log (stream)
KEYS[4]  the hosts of the run with a final result (set)
KEYS[5]  the run's node briefs (hash)
KEYS[6]  the run's header (hash)
KEYS[7]  the run's host -> event of its current result (hash)
KEYS[8]  the runs index (zset)
KEYS[9], KEYS[10], ...  the run's task and caller indexes (zsets), when its record is known
ARGV[1]  the task id
ARGV[2]  the record exactly as read; '' when it was missing (a stale index entry)
Result:  1 when removed; 0 when the record changed meanwhile (nothing removed)
]]
local current = redis.call('GET', KEYS[1])
if (current or '') ~= ARGV[2] then
  return 0
end
redis.call('UNLINK', KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7])
for k = 8, #KEYS do
  redis.call('ZREM', KEYS[k], ARGV[1])
end
return 1
`,
);
