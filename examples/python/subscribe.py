#!/usr/bin/env python3
"""Subscribe to a carbonflow view over WebSocket and keep a live copy of it.

    python3 examples/python/subscribe.py hub_prices
    python3 examples/python/subscribe.py hub_prices --filter market=PJM --max-messages 20 --print-messages

Needs `websockets` and `msgpack` (scripts/python-env.sh installs them into
target/python-env). The protocol is docs/websocket-protocol.md: a snapshot,
then diffs with gap-free sequence numbers, heartbeats with the frontier. A
keyed view sends upserts and deletes by key; a view without a key sends
inserted and deleted rows. On a dropped connection this example reconnects
and resumes from the last sequence number and version it applied.
`websockets` offers permessage-deflate, which the server agrees to: the
extensions agreed are printed to stderr on each connection.
"""

import argparse
import asyncio
import json
import sys

import msgpack
import websockets

PROTOCOL = "carbonflow.v1.msgpack"


class Replica:
    """The rows of one view, as the messages describe them."""

    def __init__(self):
        self.key = None
        self.rows = {}  # key tuple (or row tuple) -> row (or count)

    def snapshot(self, message):
        columns = [c["name"] for c in message["columns"]]
        self.key = [columns.index(k) for k in message["key"]] if message["key"] else None
        self.rows = {}
        self._add(message["rows"])

    def diff(self, message):
        for row in message.get("deletes", []):
            if self.key is None:
                self._count(tuple(row), -1)
            else:
                self.rows.pop(tuple(row), None)
        self._add(message.get("upserts", []) + message.get("inserts", []))

    def _add(self, rows):
        for row in rows:
            if self.key is None:
                self._count(tuple(row), 1)
            else:
                self.rows[tuple(row[i] for i in self.key)] = row

    def _count(self, row, delta):
        count = self.rows.get(row, 0) + delta
        if count:
            self.rows[row] = count
        else:
            self.rows.pop(row, None)

    def __len__(self):
        return len(self.rows) if self.key is not None else sum(self.rows.values())


def parse_filter(pairs):
    """`market=PJM` and `node=A,B` into the protocol's filter map."""
    result = {}
    for pair in pairs:
        column, _, values = pair.partition("=")
        values = values.split(",")
        result[column] = values[0] if len(values) == 1 else values
    return result


async def follow(args):
    replica = Replica()
    position = None  # (seq, version) last applied
    received = 0
    while True:
        headers = {"Authorization": f"Bearer {args.token}"} if args.token else None
        try:
            async with websockets.connect(args.url, subprotocols=[PROTOCOL], additional_headers=headers, max_size=None) as socket:
                extensions = socket.response.headers.get("Sec-WebSocket-Extensions", "none")
                print(f"connected to {args.url}; extensions: {extensions}", file=sys.stderr)
                subscribe = {"type": "subscribe", "id": 1, "view": args.view, "filter": parse_filter(args.filter)}
                if position:
                    subscribe["resume_from"], subscribe["resume_version"] = position
                await socket.send(msgpack.packb(subscribe))
                async for frame in socket:
                    message = msgpack.unpackb(frame)
                    kind = message["type"]
                    if kind == "error":
                        print(f"error: {message['code']}: {message['message']}", file=sys.stderr)
                        return 1
                    if kind not in ("snapshot", "diff", "heartbeat"):
                        continue
                    if kind == "snapshot":
                        replica.snapshot(message)
                    elif kind == "diff":
                        if position is None or message["seq"] != position[0] + 1:
                            print("gap in sequence numbers: resubscribing", file=sys.stderr)
                            position = None
                            break
                        replica.diff(message)
                    position = (message["seq"], message["version"])
                    received += 1
                    if args.print_messages:
                        print(json.dumps(message), flush=True)
                    else:
                        print(f"{kind:9} seq={message['seq']} frontier={message['frontier']} rows={len(replica)}", flush=True)
                    if args.max_messages and received >= args.max_messages:
                        return 0
                    if message["frontier"] == 2**63 - 1 and kind != "snapshot" and args.exit_when_complete:
                        return 0
        except (OSError, websockets.ConnectionClosed) as error:
            print(f"connection lost ({error}); reconnecting", file=sys.stderr)
        await asyncio.sleep(args.retry_seconds)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("view")
    parser.add_argument("--url", default="ws://127.0.0.1:8080/v1/stream")
    parser.add_argument("--token")
    parser.add_argument("--filter", action="append", default=[], help="column=value or column=v1,v2 (key columns)")
    parser.add_argument("--max-messages", type=int, default=0, help="stop after this many snapshot/diff/heartbeat messages")
    parser.add_argument("--exit-when-complete", action="store_true", help="stop once the view is final (every input ended)")
    parser.add_argument("--print-messages", action="store_true", help="print each decoded message as JSON")
    parser.add_argument("--retry-seconds", type=float, default=0.5)
    return asyncio.run(follow(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
