#!/usr/bin/env python3
"""A seed-style baseline for bench-suite: what a team writes first to find identity threats in
Okta System Log NDJSON, as the reference design sketches it.

`json` per line; per user, the last sign-in's place and a haversine speed (impossible travel
above 900 km/h) and failed sign-ins in a 10-minute window (brute force at 8); every sign-in's
features (hour, latitude, longitude, speed, recent failures) scored at the end by a
scikit-learn IsolationForest (1 % contamination); alerts written as JSONL. No reorder buffer,
no deduplication, no risk, no store: less work than `idgw replay` does.

    seed_baseline.py EVENTS.ndjson OUT.jsonl

Prints one JSON line: events, seconds (wall inside the script, reading to the last alert
written; bench-suite times the whole process too), events_per_s, alert rows by kind (each
failure past the threshold and each fast move is a row: no episodes, no attempts merged).
"""

import json
import math
import sys
import time
from collections import defaultdict, deque
from datetime import datetime, timezone

from sklearn.ensemble import IsolationForest

SIGN_IN = {"user.session.start", "user.authentication.sso", "user.authentication.auth_via_mfa"}
FAILED = {"FAILURE", "DENY"}
TRAVEL_KMH = 900.0
BRUTE_FAILURES = 8
BRUTE_WINDOW_S = 600.0


def haversine_km(a, b):
    lat1, lon1 = map(math.radians, a)
    lat2, lon2 = map(math.radians, b)
    h = math.sin((lat2 - lat1) / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    return 2 * 6371.0 * math.asin(math.sqrt(min(1.0, h)))


def when(published):
    return datetime.fromisoformat(published.replace("Z", "+00:00")).timestamp()


def main():
    events_path, out_path = sys.argv[1], sys.argv[2]
    started = time.perf_counter()
    last_place = {}
    failures = defaultdict(deque)
    features, feature_events = [], []
    alerts = []
    events = 0
    with open(events_path, encoding="utf-8") as lines:
        for line in lines:
            events += 1
            try:
                ev = json.loads(line)
                t = when(ev["published"])
            except (json.JSONDecodeError, AttributeError, KeyError, TypeError, ValueError):
                continue
            if not isinstance(ev, dict):
                continue
            actor = (ev.get("actor") or {}).get("id")
            if not actor:
                continue
            result = (ev.get("outcome") or {}).get("result")
            kind = ev.get("eventType")
            if result in FAILED and kind in SIGN_IN | {"user.authentication.auth_via_IDP", "user.authentication.verify"}:
                window = failures[actor]
                window.append(t)
                while window and t - window[0] > BRUTE_WINDOW_S:
                    window.popleft()
                if len(window) == BRUTE_FAILURES:
                    alerts.append({"kind": "brute_force", "user": actor, "at": ev["published"]})
                continue
            if kind not in SIGN_IN or result != "SUCCESS":
                continue
            geo = ((ev.get("client") or {}).get("geographicalContext") or {}).get("geolocation") or {}
            if geo.get("lat") is None or geo.get("lon") is None:
                continue
            place = (geo["lat"], geo["lon"])
            speed = 0.0
            if actor in last_place:
                t0, p0 = last_place[actor]
                if t < t0:
                    # Out of order (Okta delivers some events late): no speed from it.
                    features.append([datetime.fromtimestamp(t, timezone.utc).hour, place[0], place[1], 0.0, len(failures[actor])])
                    feature_events.append((actor, ev["published"]))
                    continue
                hours = max((t - t0) / 3600.0, 1e-6)
                speed = haversine_km(p0, place) / hours
                if speed > TRAVEL_KMH and haversine_km(p0, place) > 500:
                    alerts.append({"kind": "impossible_travel", "user": actor, "at": ev["published"]})
            last_place[actor] = (t, place)
            hour = datetime.fromtimestamp(t, timezone.utc).hour
            features.append([hour, place[0], place[1], min(speed, 20000.0), len(failures[actor])])
            feature_events.append((actor, ev["published"]))
    if len(features) >= 10:
        model = IsolationForest(contamination=0.01, random_state=7, n_estimators=100)
        flags = model.fit_predict(features)
        for (actor, at), flag in zip(feature_events, flags):
            if flag == -1:
                alerts.append({"kind": "anomalous_signin", "user": actor, "at": at})
    with open(out_path, "w", encoding="utf-8") as out:
        for a in alerts:
            out.write(json.dumps(a) + "\n")
    seconds = time.perf_counter() - started
    kinds = defaultdict(int)
    for a in alerts:
        kinds[a["kind"]] += 1
    print(json.dumps({
        "peer": "seed-style Python (json, haversine, IsolationForest, JSONL)",
        "events": events,
        "seconds": round(seconds, 3),
        "events_per_s": round(events / seconds, 1) if seconds > 0 else None,
        "alerts": dict(kinds),
    }))


if __name__ == "__main__":
    main()
