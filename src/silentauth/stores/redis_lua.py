"""The Lua scripts behind :class:`~silentauth.stores.redis.RedisStore`.

Each runs atomically inside Redis: the compare-and-swap of a rotation, a
revocation, a feed entry, rate-limit counting. Every script touches keys of
one hash slot only (see :mod:`silentauth.stores.redis_layout`), so each runs
on one shard of a Redis Cluster. Key names arrive as KEYS, or for sessions
of one group as that group's key prefix plus the id; values arrive as ARGV
and are never evaluated as code.
"""

from __future__ import annotations

_ADD_USER = """
local existing = redis.call('HGET', KEYS[1], 'id')
if existing then
  if existing == ARGV[1] then return 1 end  -- our own insert, retried
  return 0
end
redis.call('HSET', KEYS[1], 'id', ARGV[1], 'username', ARGV[2], 'password_hash', ARGV[3], 'created_at', ARGV[4])
redis.call('SADD', KEYS[2], ARGV[2])
return 1
"""

_ADD_KEY = """
return redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2])
"""

_REMOVE_USER = """
redis.call('SREM', KEYS[2], ARGV[1])
return redis.call('DEL', KEYS[1])
"""

# Only an existing user: a HSET alone would resurrect a just-removed one as a stub.
_UPDATE_USER_HASH = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'password_hash', ARGV[1])
return 1
"""

# KEYS: client:{id}, clients. ARGV: id, secret_hash, name, created_at.
_ADD_CLIENT = """
if redis.call('EXISTS', KEYS[1]) == 1 then
  local r = redis.call('HMGET', KEYS[1], 'secret_hash', 'created_at')
  if r[1] == ARGV[2] and r[2] == ARGV[4] then return 1 end  -- our own insert, retried
  return 0
end
redis.call('HSET', KEYS[1], 'client_id', ARGV[1], 'secret_hash', ARGV[2], 'name', ARGV[3], 'created_at', ARGV[4])
redis.call('SADD', KEYS[2], ARGV[1])
return 1
"""

# KEYS: session, session-ends (one group). ARGV: id, ttl, end time, field/value pairs.
_CREATE_SESSION = """
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('HSET', KEYS[1], unpack(ARGV, 4))
  redis.call('EXPIRE', KEYS[1], ARGV[2])
end
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
return 1
"""

# KEYS: user-sessions, user-live (one user's slot). ARGV: id, ttl (never
# shortened), created_at, limit (0: none), count of dead ids, the dead ids,
# then (created_at, id) of live sessions seen. Indexes the new session; a
# session seen dead leaves user-live for good (death is final). The live ones
# seen are added only when user-live does not exist yet (sessions from before
# it): added later, one that a racing login just evicted would count again.
# Then, with a limit, returns the oldest members beyond it (never the new
# one), which leave user-live here and are revoked by the caller. Logins of
# one user run this one after another, so racing logins never overfill.
_ADMIT_SESSION = """
local ttl = tonumber(ARGV[2])
local ndead = tonumber(ARGV[5])
local seed = redis.call('EXISTS', KEYS[2]) == 0
redis.call('SADD', KEYS[1], ARGV[1])
if redis.call('TTL', KEYS[1]) < ttl then redis.call('EXPIRE', KEYS[1], ttl) end
for i = 6, 5 + ndead do redis.call('ZREM', KEYS[2], ARGV[i]) end
if seed then
  for i = 6 + ndead, #ARGV - 1, 2 do redis.call('ZADD', KEYS[2], ARGV[i], ARGV[i + 1]) end
end
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
if redis.call('TTL', KEYS[2]) < ttl then redis.call('EXPIRE', KEYS[2], ttl) end
local limit = tonumber(ARGV[4])
local ended = {}
if limit > 0 then
  local excess = redis.call('ZCARD', KEYS[2]) - limit
  if excess > 0 then
    for _, id in ipairs(redis.call('ZRANGE', KEYS[2], 0, excess)) do
      if id ~= ARGV[1] and #ended < excess then table.insert(ended, id) end
    end
    for _, id in ipairs(ended) do redis.call('ZREM', KEYS[2], id) end
  end
end
return ended
"""

# KEYS: session, session-ends. ARGV: counter, now, idle_expires_at, retention, id,
# rotation key hash (recorded with a successful swap).
_ROTATE = """
local s = redis.call('HMGET', KEYS[1], 'counter', 'revoked_at', 'idle_expires_at', 'expires_at')
if not s[1] then return {0, {}} end
local now = tonumber(ARGV[2])
if s[1] == ARGV[1] and s[2] == '' and tonumber(s[3]) > now and tonumber(s[4]) > now then
  local idle = ARGV[3]
  if tonumber(s[4]) < tonumber(idle) then idle = s[4] end
  redis.call('HSET', KEYS[1], 'counter', tostring(tonumber(s[1]) + 1),
             'rotated_at', ARGV[2], 'last_used_at', ARGV[2], 'idle_expires_at', idle,
             'rotation_key', ARGV[6])
  redis.call('EXPIRE', KEYS[1], math.max(1, math.ceil(tonumber(idle) - now + tonumber(ARGV[4]))))
  redis.call('ZADD', KEYS[2], idle, ARGV[5])
  return {1, redis.call('HGETALL', KEYS[1])}
end
return {0, redis.call('HGETALL', KEYS[1])}
"""

# KEYS: revocations, revocations:at, revocations:seq. ARGV: now, session ids.
# An id already in the feed keeps its entry: a repeated revocation feeds once.
_FEED = """
for i = 2, #ARGV do
  if not redis.call('ZSCORE', KEYS[1], ARGV[i]) then
    redis.call('ZADD', KEYS[1], redis.call('INCR', KEYS[3]), ARGV[i])
    redis.call('ZADD', KEYS[2], ARGV[1], ARGV[i])
  end
end
return 1
"""

# KEYS: session-ends (one group). ARGV: session key prefix of the group, now,
# reason, retention, session ids (all of that group).
_REVOKE = """
local done = {}
for i = 5, #ARGV do
  local id = ARGV[i]
  local key = ARGV[1] .. id
  local r = redis.call('HMGET', key, 'revoked_at', 'idle_expires_at', 'expires_at')
  if r[2] and r[1] == '' then
    redis.call('HSET', key, 'revoked_at', ARGV[2], 'revoked_reason', ARGV[3])
    local ttl = redis.call('TTL', key)
    if ttl < 0 or ttl > tonumber(ARGV[4]) then redis.call('EXPIRE', key, ARGV[4]) end
    local ends = r[2]
    if tonumber(r[3]) < tonumber(ends) then ends = r[3] end
    if tonumber(ARGV[2]) < tonumber(ends) then ends = ARGV[2] end
    redis.call('ZADD', KEYS[1], ends, id)
    table.insert(done, id)
  end
end
return done
"""

# KEYS: revocations, revocations:seq. ARGV: cursor.
_SINCE = """
local top = tonumber(redis.call('GET', KEYS[2]) or '0')
local cursor = ARGV[1]
if tonumber(cursor) > top then cursor = '0' end  -- the server came back empty
return {cursor, redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. cursor, '+inf', 'WITHSCORES')}
"""

# KEYS: session-ends (one group). ARGV: session key prefix of the group, horizon,
# batch. Returns {ids seen, sessions deleted, user id, session id, ...}: the
# user indexes live in other slots, so the caller removes the ids from them.
_PURGE_SESSIONS = """
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[2], 'LIMIT', 0, tonumber(ARGV[3]))
local out = {#ids, 0}
for _, id in ipairs(ids) do
  local key = ARGV[1] .. id
  local uid = redis.call('HGET', key, 'user_id')
  if uid then
    table.insert(out, uid)
    table.insert(out, id)
  end
  out[2] = out[2] + redis.call('DEL', key)
  redis.call('ZREM', KEYS[1], id)
end
return out
"""

# KEYS: revocations, revocations:at. ARGV: horizon.
_PURGE_FEED = """
local ids = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', '(' .. ARGV[1])
for _, id in ipairs(ids) do redis.call('ZREM', KEYS[1], id) end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', '(' .. ARGV[1])
return #ids
"""

_HIT = """
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
return n
"""

SCRIPTS = {
    "add_user": _ADD_USER,
    "remove_user": _REMOVE_USER,
    "add_key": _ADD_KEY,
    "add_client": _ADD_CLIENT,
    # The same two steps as for a user: drop from the index, delete the hash.
    "remove_client": _REMOVE_USER,
    "set_password": _UPDATE_USER_HASH,
    "create_session": _CREATE_SESSION,
    "admit_session": _ADMIT_SESSION,
    "rotate": _ROTATE,
    "feed": _FEED,
    "revoke": _REVOKE,
    "since": _SINCE,
    "purge_sessions": _PURGE_SESSIONS,
    "purge_feed": _PURGE_FEED,
    "hit": _HIT,
}
