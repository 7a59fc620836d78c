"""The stream and job-queue layouts of the seed documents, in redis-py.

The functions below are the seeds' own code (shared/seeds: the
state-management guide's event stream, consumer groups and job queue), kept
as the seeds write them; the only change is that each takes its client as
the first argument instead of a module-level `r`. The wrappers at the end
are what the Rust tests call (through harness.py).
"""

import json

import redis

# ---------------------------------------------------------------------------
# Seed: job queue


def enqueue_job(r, queue_name: str, job_data: dict):
    """Add job to queue."""
    key = f"queue:{queue_name}"
    r.rpush(key, json.dumps(job_data))


def dequeue_job(r, queue_name: str, timeout: int = 0) -> dict:
    """Get job from queue (blocking)."""
    key = f"queue:{queue_name}"
    if timeout > 0:
        # Blocking pop with timeout
        result = r.blpop(key, timeout=timeout)
        if result:
            _, job_data = result
            return json.loads(job_data)
    else:
        # Non-blocking pop
        job_data = r.lpop(key)
        if job_data:
            return json.loads(job_data)
    return None


# ---------------------------------------------------------------------------
# Seed: event stream and consumer groups


def add_event(r, stream_key: str, event_data: dict) -> str:
    """Add event to stream."""
    # Returns auto-generated ID (timestamp-sequence)
    event_id = r.xadd(stream_key, event_data)
    return event_id


def read_events(r, stream_key: str, count: int = 10, start_id: str = '0') -> list:
    """Read events from stream."""
    events = r.xread({stream_key: start_id}, count=count)
    # events format: [(stream_name, [(id, data), (id, data), ...])]
    if events:
        _, event_list = events[0]
        return event_list
    return []


def create_consumer_group(r, stream_key: str, group_name: str):
    """Create consumer group for stream."""
    try:
        r.xgroup_create(name=stream_key, groupname=group_name, id='0')
    except redis.ResponseError as e:
        if "BUSYGROUP" not in str(e):
            raise


def read_from_group(r, stream_key: str, group_name: str,
                    consumer_name: str, count: int = 10) -> list:
    """Read events as consumer in group."""
    # Read new messages with '>'
    events = r.xreadgroup(
        groupname=group_name,
        consumername=consumer_name,
        streams={stream_key: '>'},
        count=count,
        block=100  # the seed blocks 5 s; the tests need no wait
    )
    if events:
        _, event_list = events[0]
        return event_list
    return []


def acknowledge_event(r, stream_key: str, group_name: str, event_id: str):
    """Acknowledge processed event."""
    r.xack(stream_key, group_name, event_id)


# ---------------------------------------------------------------------------
# What the Rust tests call


def _text(v):
    return v.decode() if isinstance(v, bytes) else v


def stream_add(r, key, fields):
    return _text(add_event(r, key, fields))


def stream_read(r, key):
    return [[_text(i), {_text(k): _text(v) for k, v in d.items()}]
            for i, d in read_events(r, key, count=100)]


def group_consume(r, key, group):
    """The seed's consumer loop, once: read, then acknowledge each."""
    create_consumer_group(r, key, group)
    out = []
    for event_id, data in read_from_group(r, key, group, "py-consumer", count=100):
        out.append({_text(k): _text(v) for k, v in data.items()})
        acknowledge_event(r, key, group, event_id)
    return out


def job_enqueue(r, queue_name, job):
    enqueue_job(r, queue_name, job)


def job_dequeue(r, queue_name, timeout=0):
    return dequeue_job(r, queue_name, timeout)
