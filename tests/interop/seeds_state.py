"""State at rest as the seed documents keep it, in redis-py: user profiles
as hashes whose id lives only in the key (`user:profile:<id>`), and
cache-aside / write-through entries as plain JSON set with SETEX
(`user:<id>`).

The functions are the seeds' own code, kept as the seeds write them; the
only changes are that they take their client as an argument instead of a
module-level `r`, and that the seed's `database` is a dictionary the test
hands over. The Rust tests call them through harness.py.
"""

import json
from typing import Any, Dict, Optional


# ---------------------------------------------------------------------------
# Seed: user profile storage


def save_user_profile(r, user_id: int, profile: dict):
    """Save user profile as hash."""
    key = f"user:profile:{user_id}"
    r.hset(key, mapping=profile)
    r.expire(key, 86400)  # 24 hour TTL


def get_user_profile(r, user_id: int) -> dict:
    """Get complete user profile."""
    key = f"user:profile:{user_id}"
    return r.hgetall(key)


def update_user_field(r, user_id: int, field: str, value: str):
    """Update single profile field."""
    key = f"user:profile:{user_id}"
    r.hset(key, field, value)


# ---------------------------------------------------------------------------
# Seed: cache-aside and write-through


class _Database:
    """The seed's `database`, holding what the test gives it."""

    def __init__(self, users):
        self.users = users

    def get_user(self, user_id):
        return self.users.get(str(user_id))

    def update_user(self, user_id, user_data):
        self.users[str(user_id)] = user_data
        return True


def get_user(r, database, user_id: int) -> Optional[Dict[str, Any]]:
    """Cache-aside pattern for user data."""
    cache_key = f"user:{user_id}"
    # Try cache first
    cached_data = r.get(cache_key)
    if cached_data:
        return json.loads(cached_data)
    # Cache miss - load from database
    user_data = database.get_user(user_id)  # Your DB query
    if user_data:
        # Store in cache with 1 hour TTL
        r.setex(cache_key, 3600, json.dumps(user_data))
    return user_data


def update_user(r, database, user_id: int, user_data: Dict[str, Any]) -> bool:
    """Write-through pattern for user updates."""
    cache_key = f"user:{user_id}"
    # Write to database first
    success = database.update_user(user_id, user_data)
    if success:
        # Update cache immediately
        r.setex(cache_key, 3600, json.dumps(user_data))
    return success


# ---------------------------------------------------------------------------
# Entry points for the Rust tests


def cache_get_user(r, user_id, users):
    """The seed's get_user over a database holding `users` (id text ->
    dict); returns the user and whether the database was asked."""
    database = _Database(dict(users))
    asked = []
    original = database.get_user

    def counting(uid):
        asked.append(uid)
        return original(uid)

    database.get_user = counting
    return {"user": get_user(r, database, user_id), "loaded": bool(asked)}


def cache_update_user(r, user_id, user_data):
    """The seed's update_user (write-through) over an empty database."""
    return update_user(r, _Database({}), user_id, user_data)


def raw_get(r, key):
    """The bytes under `key` as text, or None."""
    return r.get(key)


def raw_set(r, key, value):
    """Writes `value` at `key` with no TTL (bytes another program left)."""
    return r.set(key, value)


def raw_ttl(r, key):
    """The TTL of `key` in seconds."""
    return r.ttl(key)


def raw_hgetall(r, key):
    """Every field of the hash at `key`."""
    return r.hgetall(key)
