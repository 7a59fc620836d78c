"""Runs functions of the interop modules for the Rust tests.

Started by tests/common/interop.rs as

    python harness.py --url redis://127.0.0.1:<port>/ [--cluster]

it reads one request per line on stdin, {"call": "<module>.<function>",
"args": {...}}, calls the function with a redis-py client for the server as
its first argument and the arguments by name, and writes one line per
request on stdout: {"ok": <result>} or {"error": "<traceback>"}. Results are
JSON; bytes are sent as text (UTF-8, invalid bytes replaced).

Each area of the library has its own module beside this file
(seeds_coord.py, seeds_cache.py, ...) holding the redis-py code of the seed
documents, written as the seeds write it, and the entry points the tests
call.
"""

import argparse
import importlib
import json
import os
import sys
import traceback

import redis
from redis.cluster import RedisCluster


def client(url, cluster):
    """A client like the seeds' `redis.Redis(decode_responses=True)`, with
    bounded socket waits so that a broken test fails instead of hanging."""
    if cluster:
        return RedisCluster.from_url(
            url, decode_responses=True, socket_timeout=10, socket_connect_timeout=10
        )
    return redis.Redis.from_url(
        url, decode_responses=True, socket_timeout=10, socket_connect_timeout=10
    )


def plain(value):
    """A JSON-friendly copy of a result."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, (list, tuple, set)):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {plain(k): plain(v) for k, v in value.items()}
    return value


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--cluster", action="store_true")
    opts = parser.parse_args()
    sys.dont_write_bytecode = True  # keep the source tree clean
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    r = client(opts.url, opts.cluster)
    out = sys.stdout
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            request = json.loads(line)
            module_name, function_name = request["call"].rsplit(".", 1)
            function = getattr(importlib.import_module(module_name), function_name)
            reply = {"ok": plain(function(r, **request.get("args", {})))}
        except Exception:  # reported to the Rust test, which fails with it
            reply = {"error": traceback.format_exc()}
        out.write(json.dumps(reply) + "\n")
        out.flush()


if __name__ == "__main__":
    main()
