"""The pub/sub code of the seed documents, in redis-py.

`publish_event` is the seeds' publisher as they write it (taking its client
as an argument instead of a module-level `r`); the subscriber functions
follow the seeds' subscriber (`r.pubsub()`, `subscribe`, `psubscribe`,
`json.loads(message['data'])`), split in two calls so that the Rust test
can publish between them: `subscribe_start` subscribes and returns once
the server confirmed, `subscribe_collect` reads what arrived.
"""

import json
import time

# ---------------------------------------------------------------------------
# Seed: publisher


def publish_event(r, channel: str, message: dict):
    """Publish event to channel."""
    return r.publish(channel, json.dumps(message))


# ---------------------------------------------------------------------------
# Seed: subscriber (split for the test)

_subscribers = {}


def subscribe_start(r, name: str, channels=(), patterns=()):
    """Subscribe to channels and patterns, as the seed does; waits for every
    confirmation so that nothing published afterwards is missed."""
    p = r.pubsub()
    if channels:
        p.subscribe(*channels)
    if patterns:
        p.psubscribe(*patterns)
    expected = len(channels) + len(patterns)
    confirmed = 0
    deadline = time.time() + 10
    while confirmed < expected and time.time() < deadline:
        message = p.get_message(timeout=0.1)
        if message and message["type"] in ("subscribe", "psubscribe"):
            confirmed += 1
    _subscribers[name] = p
    return confirmed


def subscribe_collect(r, name: str, count: int, timeout: float = 10.0):
    """Reads up to `count` messages (as the seed's handlers see them: the
    type, the pattern, the channel and the JSON-decoded data)."""
    p = _subscribers[name]
    out = []
    deadline = time.time() + timeout
    while len(out) < count and time.time() < deadline:
        message = p.get_message(ignore_subscribe_messages=True, timeout=0.1)
        if message is None:
            continue
        if message["type"] in ("message", "pmessage"):
            data = message["data"]
            try:
                data = json.loads(data)
            except ValueError:
                pass
            out.append(
                {
                    "type": message["type"],
                    "pattern": message.get("pattern"),
                    "channel": message["channel"],
                    "data": data,
                }
            )
    p.close()
    del _subscribers[name]
    return out
