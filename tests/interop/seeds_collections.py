"""The collection layouts of the seed documents, in redis-py.

The functions of the first part are the seeds' own code (shared/seeds: the
state-management guide): activity lists, feeds, tags, online users and the
time-based sorted set, kept as the seeds write them. The only changes: each
takes its client as its first argument instead of a module-level `r`, and
the tag functions take a key prefix, so that a test can give its keys its
namespace and, on a Cluster, one hash tag (the seed's `sinter` needs its
keys in one slot there).

The second part holds the seeds' broken patterns fixed the way the Rust
library fixes them (a reverse index for tags, a sorted set for online
users), written in plain redis-py, to show that other clients can follow
the same layouts. The Rust tests call these functions through harness.py.
"""

import json
import time
from datetime import datetime

# ---------------------------------------------------------------------------
# Seed: activity list (lpush + ltrim + expire)


def track_user_activity(r, user_id, action: str):
    """Track user activity with automatic expiration."""
    activity_key = f"user:{user_id}:activity"
    timestamp = datetime.utcnow().isoformat()
    # Add activity to list
    r.lpush(activity_key, json.dumps({"action": action, "timestamp": timestamp}))
    # Keep only last 100 activities
    r.ltrim(activity_key, 0, 99)
    # Set expiration (30 days)
    r.expire(activity_key, 2592000)


def get_recent_activity(r, user_id, limit: int = 10) -> list:
    """Get recent user activities."""
    activity_key = f"user:{user_id}:activity"
    activities = r.lrange(activity_key, 0, limit - 1)
    return [json.loads(a) for a in activities]


# ---------------------------------------------------------------------------
# Seed: activity feed


def add_to_feed(r, user_id, activity: dict):
    """Add activity to user feed."""
    key = f"feed:{user_id}"
    r.lpush(key, json.dumps(activity))
    r.ltrim(key, 0, 99)  # Keep only latest 100 items
    r.expire(key, 604800)  # 7 days


def get_feed(r, user_id, start: int = 0, end: int = 19) -> list:
    """Get user feed with pagination."""
    key = f"feed:{user_id}"
    items = r.lrange(key, start, end)
    return [json.loads(item) for item in items]


# ---------------------------------------------------------------------------
# Seed: tags and relationships


def add_tags(r, prefix, item_id, tags: list):
    """Add tags to item."""
    key = f"{prefix}item:{item_id}:tags"
    r.sadd(key, *tags)


def get_tags(r, prefix, item_id) -> set:
    """Get all tags for item."""
    key = f"{prefix}item:{item_id}:tags"
    return r.smembers(key)


def find_items_with_all_tags(r, prefix, tags: list) -> set:
    """Find items having all specified tags."""
    keys = [f"{prefix}item:*:tags" for _ in tags]
    # This is simplified - in practice, you'd need to track item IDs differently
    return r.sinter(*keys)


# ---------------------------------------------------------------------------
# Seed: online users tracking


def user_online(r, user_id):
    """Mark user as online."""
    r.sadd("users:online", user_id)
    r.expire(f"user:{user_id}:heartbeat", 60)


def get_online_count(r) -> int:
    """Get count of online users."""
    return r.scard("users:online")


# ---------------------------------------------------------------------------
# Seed: time-based sorted set (activity stream)


def add_activity(r, user_id, activity: str):
    """Add timestamped activity."""
    key = f"user:{user_id}:activities"
    timestamp = time.time()
    r.zadd(key, {activity: timestamp})
    # Keep only last 24 hours
    cutoff = timestamp - 86400
    r.zremrangebyscore(key, "-inf", cutoff)


def get_recent_activities(r, user_id, count: int = 10) -> list:
    """Get recent activities."""
    key = f"user:{user_id}:activities"
    # Get most recent (highest timestamps)
    return r.zrevrange(key, 0, count - 1, withscores=True)


# ---------------------------------------------------------------------------
# Fixed: the reverse index and the sorted set of online users, in redis-py


def find_items_with_all_tags_fixed(r, prefix, tags: list) -> list:
    """The items having every tag: one SINTER of the tags' item sets."""
    return sorted(r.sinter(*[f"{prefix}tag:{t}:items" for t in tags]))


def add_tags_fixed(r, prefix, item_id, tags: list):
    """Both sides, as TagSet.tag writes them (one transaction)."""
    pipe = r.pipeline(transaction=not hasattr(r, "get_nodes"))
    pipe.sadd(f"{prefix}item:{item_id}:tags", *tags)
    for t in tags:
        pipe.sadd(f"{prefix}tag:{t}:items", item_id)
    pipe.execute()
    return True


def heartbeat(r, key, user_id, timeout=60):
    """A user seen now: ZADD, prune below the cutoff, expire the set."""
    now = time.time()
    r.zadd(key, {user_id: now})
    r.zremrangebyscore(key, "-inf", f"({now - timeout}")
    r.expire(key, timeout)
    return True


def online_count(r, key, timeout=60) -> int:
    return r.zcount(key, f"({time.time() - timeout}", "+inf")


def online_users(r, key, timeout=60) -> list:
    return r.zrevrangebyscore(key, "+inf", f"({time.time() - timeout}")


def command(r, args):
    """Any command, for reading what the other side stored."""
    return r.execute_command(*args)
