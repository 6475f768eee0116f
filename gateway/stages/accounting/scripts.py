"""The two Lua scripts of the request path: admit a call, and record it.

Each runs atomically in Redis in one round trip, whatever the number of replicas and workers, so
no two calls can both take the last unit of a limit. Windows follow the Redis server's clock
(``TIME``): a minute, a UTC day, a UTC month. A counter is a hash ``{w, used, held}``: ``w`` is the
window it counts, ``used`` what was consumed, ``held`` what admitted calls still reserve.

Every hold is also a member ``<request id>:<amount>:<window>`` of the counter's holds set (a sorted
set scored by the hold's deadline). Recording a call removes its member and releases the amount;
a hold whose call never got recorded (its gateway died) is released by the next admission after
its deadline. Whichever comes first releases it, so it is released exactly once.

What an admission reserved is written beside the counters, under the call's request id (the
*admission marker*: window and amount per counter). The record script settles from that marker,
not from what the gateway believes, so an admission the gateway gave up on (Redis stalled past its
timeout, then ran the script after all) is settled like any other: its hold released, its request
and tokens counted once. An admission that reaches Redis after its call was recorded finds the
record's marker and changes nothing.
"""

from __future__ import annotations

from ...store.fast_redis import Script

# Same arithmetic as periods.month_index; tested against it.
LUA_PERIODS = """
local function month_index(day)
  local z = day + 719468
  local era = math.floor(z / 146097)
  local doe = z - era * 146097
  local yoe = math.floor((doe - math.floor(doe / 1460) + math.floor(doe / 36524) - math.floor(doe / 146096)) / 365)
  local y = yoe + era * 400
  local doy = doe - (365 * yoe + math.floor(yoe / 4) - math.floor(yoe / 100))
  local mp = math.floor((5 * doy + 2) / 153)
  local m = mp < 10 and mp + 3 or mp - 9
  if m <= 2 then y = y + 1 end
  return y * 12 + m - 1
end
local now = tonumber(redis.call('TIME')[1])
local function window_of(kind)
  if kind == 'm' then return math.floor(now / 60) end
  if kind == 'd' then return math.floor(now / 86400) end
  return month_index(math.floor(now / 86400))
end
local TTL = {m = 120, d = 2 * 86400 + 3600, M = 32 * 86400 + 3600}
local function hold_member(rid, amount, window)
  return rid .. ':' .. string.format('%d', amount) .. ':' .. string.format('%d', window)
end
local function release_expired(key, holds)
  local expired = redis.call('ZRANGEBYSCORE', holds, '-inf', now)
  if #expired == 0 then return end
  local w = tonumber(redis.call('HGET', key, 'w'))
  for _, member in ipairs(expired) do
    local amount, window = string.match(member, ':(%d+):(%d+)$')
    if tonumber(window) == w then redis.call('HINCRBY', key, 'held', -tonumber(amount)) end
  end
  redis.call('ZREMRANGEBYSCORE', holds, '-inf', now)
end
"""

# KEYS: n counters, then their n holds sets, then the admission marker and the record marker.
# ARGV: kind, limit, amount per counter, then the request id and how long its holds live (seconds).
# Returns {1, 0, now, w1, v1, ...} when admitted (v: used + held after this call),
#         {0, i, now, w1, v1, ...} when counter i would overflow (v: before this call),
#         {2, 0, now} when the call was recorded already (a late admission: nothing changes).
ADMIT = Script(LUA_PERIODS + """
local n = (#KEYS - 2) / 2
local marker, recorded = KEYS[2 * n + 1], KEYS[2 * n + 2]
if redis.call('EXISTS', recorded) == 1 then return {2, 0, now} end
local rid, hold_ttl = ARGV[3 * n + 1], tonumber(ARGV[3 * n + 2])
local windows, values = {}, {}
local failed = 0
for i = 1, n do
  local key = KEYS[i]
  local kind, limit, amount = ARGV[3 * i - 2], tonumber(ARGV[3 * i - 1]), tonumber(ARGV[3 * i])
  local w = window_of(kind)
  if kind ~= 'm' then release_expired(key, KEYS[n + i]) end
  local state = redis.call('HMGET', key, 'w', 'used', 'held')
  local current = 0
  if tonumber(state[1]) == w then current = (tonumber(state[2]) or 0) + (tonumber(state[3]) or 0) end
  windows[i], values[i] = w, current
  if failed == 0 and current + amount > limit then failed = i end
end
if failed == 0 then
  local reserved = {}
  for i = 1, n do
    local key = KEYS[i]
    local kind, amount = ARGV[3 * i - 2], ARGV[3 * i]
    local field = (kind == 'm') and 'used' or 'held'
    if tonumber(redis.call('HGET', key, 'w')) == windows[i] then
      redis.call('HINCRBY', key, field, amount)
    else
      redis.call('HSET', key, 'w', windows[i], 'used', 0, 'held', 0)
      redis.call('HSET', key, field, amount)
    end
    redis.call('EXPIRE', key, TTL[kind])
    if kind ~= 'm' and tonumber(amount) > 0 then
      redis.call('ZADD', KEYS[n + i], now + hold_ttl, hold_member(rid, amount, windows[i]))
      redis.call('EXPIRE', KEYS[n + i], TTL[kind])
    end
    values[i] = values[i] + tonumber(amount)
    reserved[i] = string.format('%d', windows[i]) .. ':' .. amount
  end
  redis.call('SET', marker, table.concat(reserved, ','), 'EX', hold_ttl)
end
local out = {failed == 0 and 1 or 0, failed, now}
for i = 1, n do
  out[#out + 1] = windows[i]
  out[#out + 1] = values[i]
end
return out
""")

# KEYS: record marker, ledger stream, day aggregate, then m counters to settle, their m holds sets,
#       and the admission marker.
# ARGV: record JSON, record marker TTL, stream max length, aggregate TTL, the key and route values,
#       n, n (metric, amount) pairs (added to the all, key and route rows), then the model and backend
#       rows (record.dimension_rows): their count, and per row its name, m and m (metric, amount) pairs, or
#       m = -1 for the record's own n pairs; then per counter: kind and what the call used (1 request,
#       its tokens, its cost); then the request id. A counter the admission marker reserved is settled against its
#       reservation; one it did not (nothing was limited, or the store was unreachable at admission)
#       is counted now, in the current window.
# Returns 1 when written, 0 when this request id was already recorded (a spool replay).
RECORD = Script(LUA_PERIODS + """
if redis.call('SET', KEYS[1], 1, 'NX', 'EX', ARGV[2]) == false then return 0 end
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*', 'r', ARGV[1])
local rows = {'all|*|', 'key|' .. ARGV[5] .. '|', 'route|' .. ARGV[6] .. '|'}
local n = tonumber(ARGV[7])
for i = 1, n do
  for _, row in ipairs(rows) do redis.call('HINCRBY', KEYS[3], row .. ARGV[6 + 2 * i], ARGV[7 + 2 * i]) end
end
local at = 8 + 2 * n
local models = tonumber(ARGV[at])
at = at + 1
for _ = 1, models do
  local row, m = ARGV[at] .. '|', tonumber(ARGV[at + 1])
  at = at + 2
  if m < 0 then
    for i = 1, n do redis.call('HINCRBY', KEYS[3], row .. ARGV[6 + 2 * i], ARGV[7 + 2 * i]) end
  else
    for _ = 1, m do
      redis.call('HINCRBY', KEYS[3], row .. ARGV[at], ARGV[at + 1])
      at = at + 2
    end
  end
end
if n > 0 then redis.call('EXPIRE', KEYS[3], ARGV[4]) end
local base = at
local m = (#KEYS - 4) / 2
local rid = ARGV[#ARGV]
local marker = KEYS[#KEYS]
local reserved = {}
local stored_marker = redis.call('GET', marker)
if stored_marker then
  for w, amount in string.gmatch(stored_marker, '(%d+):(%d+)') do reserved[#reserved + 1] = {tonumber(w), tonumber(amount)} end
  redis.call('DEL', marker)
end
for i = 1, m do
  local at = base + 2 * (i - 1)
  local kind, used = ARGV[at], tonumber(ARGV[at + 1])
  local key = KEYS[3 + i]
  local stored = tonumber(redis.call('HGET', key, 'w'))
  local admitted = reserved[i]
  if admitted then
    local w, amount = admitted[1], admitted[2]
    if kind == 'm' then
      if stored == w then redis.call('HINCRBY', key, 'used', used - amount) end
    else
      if stored == w then redis.call('HINCRBY', key, 'used', used) end
      if amount > 0 and redis.call('ZREM', KEYS[3 + m + i], hold_member(rid, amount, w)) == 1 and stored == w then
        redis.call('HINCRBY', key, 'held', -amount)
      end
    end
  else
    local w = window_of(kind)
    if stored == w then
      redis.call('HINCRBY', key, 'used', used)
    else
      redis.call('HSET', key, 'w', w, 'used', used, 'held', 0)
      redis.call('EXPIRE', key, TTL[kind])
    end
  end
end
return 1
""")
