#!/usr/bin/env python3
"""The subscriber of `stylecam soak --faults`: a real MQTT client (paho-mqtt)
as an inventory system would run one.

It keeps a persistent session (clean_session false, QoS 1) so a broker
restart (with persistence) or its own reconnect loses nothing queued for
it, de-duplicates every tag and person event by (device, camera, epoch,
seq) as the README's MQTT contract says, and on SIGTERM writes what it
received per (camera, epoch): how many distinct events, the highest seq,
the seqs missing below it (a camera's seq starts at 1 in each epoch and
goes up by one per event), and how many duplicates it dropped.

    python3 soak_subscriber.py --port 1883 --device soak --out summary.json

Prints "subscribed" once its subscriptions are acknowledged.
"""
import argparse
import json
import signal
import sys
import threading
import time

import paho.mqtt.client as mqtt


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--device", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--trace", help="also append every message (time, camera, seq) here")
    a = ap.parse_args()
    trace = open(a.trace, "a", buffering=1) if a.trace else None

    lock = threading.Lock()
    seen = {}  # (camera, epoch) -> set of seq
    counts = {"messages": 0, "duplicates": 0, "connects": 0, "sessions_resumed": 0}
    announced = threading.Event()

    def on_connect(client, _userdata, flags, reason, _props=None):
        if trace:
            trace.write(f"{time.time():.3f} connect {reason} session_present={flags.session_present}\n")
        if reason.is_failure:
            return
        counts["connects"] += 1
        # The broker kept the session (and what it queued meanwhile).
        if flags.session_present:
            counts["sessions_resumed"] += 1
        client.subscribe(
            [(f"stylecam/{a.device}/+/styles", 1), (f"stylecam/{a.device}/+/people", 1)]
        )

    def on_subscribe(_client, _userdata, _mid, _reasons, _props=None):
        if not announced.is_set():
            announced.set()
            print("subscribed", flush=True)

    def on_message(_client, _userdata, msg):
        try:
            j = json.loads(msg.payload)
            key = (j["camera"], j["epoch"])
            seq = int(j["seq"])
        except (ValueError, KeyError, TypeError):
            return
        if trace:
            trace.write(f"{time.time():.3f} {key[0]} {key[1]} {seq}\n")
        with lock:
            counts["messages"] += 1
            s = seen.setdefault(key, set())
            if seq in s:
                counts["duplicates"] += 1
            else:
                s.add(seq)

    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2,
        client_id=f"soak-subscriber-{a.device}",
        clean_session=False,
    )
    client.on_connect = on_connect
    client.on_subscribe = on_subscribe
    client.on_message = on_message
    client.reconnect_delay_set(min_delay=1, max_delay=2)
    client.connect_async("127.0.0.1", a.port, keepalive=10)
    client.loop_start()

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    client.loop_stop()

    with lock:
        streams = []
        for (camera, epoch), s in sorted(seen.items()):
            top = max(s)
            missing = [q for q in range(1, top + 1) if q not in s]
            streams.append(
                {
                    "camera": camera,
                    "epoch": epoch,
                    "received": len(s),
                    "highest_seq": top,
                    "missing": len(missing),
                    "missing_first": missing[:20],
                }
            )
        summary = dict(counts, streams=streams)
    with open(a.out, "w") as f:
        json.dump(summary, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
