"""The coordination layouts of the seed documents, in redis-py.

The classes and scripts below are the seeds' own code (shared/seeds: the
state-management guide and the StringCache wrapper), kept as the seeds write
them; the only change is that the session managers and the scripts take
their client as an argument instead of a module-level `r`. The functions at
the end are what the Rust tests call (through harness.py), each with the
redis-py client as its first argument.
"""

import json
import threading
import time
import uuid
from datetime import datetime

import redis

# ---------------------------------------------------------------------------
# Seed: distributed locks


class RedisLock:
    """Simple distributed lock using Redis."""

    def __init__(self, redis_client: redis.Redis, key: str, timeout: int = 10):
        self.redis = redis_client
        self.key = f"lock:{key}"
        self.timeout = timeout
        self.identifier = str(uuid.uuid4())

    def acquire(self, blocking: bool = True, timeout: float = None) -> bool:
        """Acquire lock."""
        end_time = time.time() + (timeout or self.timeout)
        while True:
            # Try to set lock with NX (only if not exists) and EX (expiration)
            if self.redis.set(self.key, self.identifier, nx=True, ex=self.timeout):
                return True
            if not blocking:
                return False
            if timeout and time.time() > end_time:
                return False
            # Wait before retry
            time.sleep(0.01)

    def release(self) -> bool:
        """Release lock only if we own it."""
        # Use Lua script for atomic check-and-delete
        lua_script = """
        if redis.call("get", KEYS[1]) == ARGV[1] then
            return redis.call("del", KEYS[1])
        else
            return 0
        end
        """
        result = self.redis.eval(lua_script, 1, self.key, self.identifier)
        return result == 1


class Redlock:
    """Redlock algorithm for distributed locking across multiple Redis instances."""

    def __init__(self, redis_instances: list):
        self.instances = redis_instances
        self.quorum = len(redis_instances) // 2 + 1

    def acquire(self, resource: str, ttl: int = 10000) -> tuple:
        identifier = str(uuid.uuid4())
        start_time = int(time.time() * 1000)
        # Try to acquire lock on all instances
        acquired = 0
        for instance in self.instances:
            try:
                if instance.set(f"lock:{resource}", identifier, nx=True, px=ttl):
                    acquired += 1
            except Exception:
                pass
        # Calculate elapsed time
        elapsed = int(time.time() * 1000) - start_time
        validity_time = ttl - elapsed - 100  # drift compensation
        # Check if we got quorum
        if acquired >= self.quorum and validity_time > 0:
            return True, identifier
        else:
            # Release locks if we didn't get quorum
            self._release_all(resource, identifier)
            return False, None

    def _release_all(self, resource: str, identifier: str):
        """Release lock on all instances."""
        lua_script = """
        if redis.call("get", KEYS[1]) == ARGV[1] then
            return redis.call("del", KEYS[1])
        else
            return 0
        end
        """
        for instance in self.instances:
            try:
                instance.eval(lua_script, 1, f"lock:{resource}", identifier)
            except Exception:
                pass


# ---------------------------------------------------------------------------
# Seed: sessions


class SessionManager:
    def __init__(self, r, ttl: int = 1800):
        self.r = r
        self.ttl = ttl

    def create_session(self, user_id: int, data: dict = None) -> str:
        """Create new session and return session ID."""
        session_id = str(uuid.uuid4())
        session_key = f"session:{session_id}"
        session_data = {
            "user_id": user_id,
            "created_at": datetime.utcnow().isoformat(),
            "data": data or {},
        }
        self.r.setex(session_key, self.ttl, json.dumps(session_data))
        return session_id

    def get_session(self, session_id: str) -> dict:
        """Retrieve session data and refresh TTL."""
        session_key = f"session:{session_id}"
        session_data = self.r.get(session_key)
        if session_data:
            # Refresh TTL on access (sliding expiration)
            self.r.expire(session_key, self.ttl)
            return json.loads(session_data)
        return None

    def update_session(self, session_id: str, data: dict) -> bool:
        """Update session data."""
        session_key = f"session:{session_id}"
        session_data = self.get_session(session_id)
        if session_data:
            session_data["data"].update(data)
            self.r.setex(session_key, self.ttl, json.dumps(session_data))
            return True
        return False

    def delete_session(self, session_id: str) -> bool:
        """Delete session (logout)."""
        session_key = f"session:{session_id}"
        return self.r.delete(session_key) > 0


class HashSessionManager:
    """Session manager using Redis hashes for better performance."""

    def __init__(self, r, ttl: int = 1800):
        self.r = r
        self.ttl = ttl

    def create_session(self, user_id: int, **kwargs) -> str:
        """Create session using hash."""
        session_id = str(uuid.uuid4())
        session_key = f"session:{session_id}"
        # Store as hash for efficient field access
        session_fields = {
            "user_id": str(user_id),
            "created_at": datetime.utcnow().isoformat(),
            **{k: str(v) for k, v in kwargs.items()},
        }
        self.r.hset(session_key, mapping=session_fields)
        self.r.expire(session_key, self.ttl)
        return session_id

    def get_field(self, session_id: str, field: str) -> str:
        """Get single session field efficiently."""
        session_key = f"session:{session_id}"
        value = self.r.hget(session_key, field)
        if value:
            self.r.expire(session_key, self.ttl)  # Refresh TTL
        return value

    def set_field(self, session_id: str, field: str, value: str) -> bool:
        """Update single session field."""
        session_key = f"session:{session_id}"
        if self.r.exists(session_key):
            self.r.hset(session_key, field, value)
            self.r.expire(session_key, self.ttl)
            return True
        return False

    def get_all(self, session_id: str) -> dict:
        """Get all session fields."""
        session_key = f"session:{session_id}"
        data = self.r.hgetall(session_key)
        if data:
            self.r.expire(session_key, self.ttl)
        return data


# ---------------------------------------------------------------------------
# Seed: plain string values (the StringCache wrapper)


class StringCache:
    def __init__(self, host="127.0.0.1", port=6379, db=0):
        self._store = redis.Redis(host=host, port=port, db=db, decode_responses=True)

    def fetch(self, key):
        value = self._store.get(key)
        return value if value is not None else ""

    def save(self, key, value, ttl_seconds=None):
        self._store.set(key, value, ex=ttl_seconds)


# ---------------------------------------------------------------------------
# Seed: Lua scripts for atomic operations

increment_script = """
local current = redis.call('GET', KEYS[1])
if not current then
    current = 0
end
local new_val = tonumber(current) + tonumber(ARGV[1])
redis.call('SET', KEYS[1], new_val)
return new_val
"""

rate_limit_script = """
local key = KEYS[1]
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local current = redis.call('INCR', key)
if current == 1 then
    redis.call('EXPIRE', key, window)
end
if current > limit then
    return 0
else
    return 1
end
"""

get_or_set_script = """
local value = redis.call('GET', KEYS[1])
if value then
    return value
else
    redis.call('SET', KEYS[1], ARGV[1])
    redis.call('EXPIRE', KEYS[1], ARGV[2])
    return ARGV[1]
end
"""


def is_allowed(r, user_id, limit: int = 100, window: int = 60) -> bool:
    """Check if user is within rate limit."""
    rate_limiter = r.register_script(rate_limit_script)
    key = f"rate_limit:{user_id}"
    result = rate_limiter(keys=[key], args=[limit, window])
    return result == 1


def get_or_compute(r, key: str, compute_fn, ttl: int = 3600):
    """Get value from cache or compute and cache it."""
    get_or_set = r.register_script(get_or_set_script)
    value = get_or_set(keys=[key], args=["__COMPUTING__", ttl])
    if value == "__COMPUTING__":
        # We set the placeholder - compute the real value
        computed = compute_fn()
        r.setex(key, ttl, computed)
        return computed
    return value


# ---------------------------------------------------------------------------
# Entry points for the Rust tests


def lock_acquire(r, name, timeout=10, blocking=False, wait=None):
    """Takes `lock:<name>` as the seed's RedisLock does; its identifier, or
    None when it is held."""
    lock = RedisLock(r, name, timeout=timeout)
    return lock.identifier if lock.acquire(blocking=blocking, timeout=wait) else None


def lock_release(r, name, identifier):
    """The seed's owner-only release of `lock:<name>` with `identifier`."""
    lock = RedisLock(r, name)
    lock.identifier = identifier
    return lock.release()


def lock_increments(r, name, counter, rounds, threads=1):
    """`rounds` times per thread: takes `lock:<name>` (blocking), increments
    `counter` by a read, a pause and a write (lost updates unless the lock
    excludes every other writer), releases. Returns how many it did."""
    done = []

    def work():
        client = redis.Redis(
            connection_pool=r.connection_pool
        ) if isinstance(r, redis.Redis) else r
        n = 0
        for _ in range(rounds):
            lock = RedisLock(client, name, timeout=10)
            if not lock.acquire(blocking=True, timeout=30):
                raise RuntimeError(f"lock:{name} not acquired in 30 s")
            value = int(client.get(counter) or 0)
            time.sleep(0.001)
            client.set(counter, value + 1)
            if not lock.release():
                raise RuntimeError(f"lock:{name} was lost while held")
            n += 1
        done.append(n)

    workers = [threading.Thread(target=work) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return sum(done)


def redlock_acquire(r, urls, resource, ttl=10000):
    """The seed's Redlock.acquire over the servers at `urls`."""
    instances = [redis.Redis.from_url(u, decode_responses=True) for u in urls]
    ok, identifier = Redlock(instances).acquire(resource, ttl)
    return identifier if ok else None


def redlock_release(r, urls, resource, identifier):
    """The seed's Redlock release on every server; how many still held it."""
    instances = [redis.Redis.from_url(u, decode_responses=True) for u in urls]
    held = sum(1 for i in instances if i.get(f"lock:{resource}") == identifier)
    Redlock(instances)._release_all(resource, identifier)
    return held


def rate_limit_checks(r, user_id, limit, window, n):
    """`n` calls of the seed's is_allowed; the answers."""
    return [is_allowed(r, user_id, limit, window) for _ in range(n)]


def session_create(r, user_id, data, ttl=1800):
    return SessionManager(r, ttl).create_session(user_id, data)


def session_get(r, session_id, ttl=1800):
    return SessionManager(r, ttl).get_session(session_id)


def session_update(r, session_id, data, ttl=1800):
    return SessionManager(r, ttl).update_session(session_id, data)


def session_delete(r, session_id):
    return SessionManager(r).delete_session(session_id)


def hash_session_create(r, user_id, fields, ttl=1800):
    return HashSessionManager(r, ttl).create_session(user_id, **fields)


def hash_session_get_field(r, session_id, field, ttl=1800):
    return HashSessionManager(r, ttl).get_field(session_id, field)


def hash_session_set_field(r, session_id, field, value, ttl=1800):
    return HashSessionManager(r, ttl).set_field(session_id, field, value)


def hash_session_get_all(r, session_id, ttl=1800):
    return HashSessionManager(r, ttl).get_all(session_id)


def _string_cache(r):
    """A StringCache whose store is the harness's client (a plain
    `redis.Redis` on a standalone server, `RedisCluster` on a Cluster), so
    the same fetch and save run on both."""
    cache = StringCache.__new__(StringCache)
    cache._store = r
    return cache


def string_fetch(r, key):
    """The seed's StringCache.fetch: the value, or "" when there is none."""
    return _string_cache(r).fetch(key)


def string_save(r, key, value, ttl_seconds=None):
    """The seed's StringCache.save."""
    _string_cache(r).save(key, value, ttl_seconds)
    return True


def increment(r, key, by):
    """The seed's atomic increment script."""
    return r.register_script(increment_script)(keys=[key], args=[by])


def get_or_compute_value(r, key, computed, ttl=3600):
    """The seed's get_or_compute with a compute function returning
    `computed`."""
    return get_or_compute(r, key, lambda: computed, ttl)


def pipeline_counter(r, key):
    """The seed's pipelined set, incr, get of a page counter."""
    batch = r.pipeline()
    batch.set(key, "0")
    batch.incr(key)
    batch.get(key)
    return batch.execute()


def command(r, args):
    """Any command, for reading what the other side stored."""
    return r.execute_command(*args)
