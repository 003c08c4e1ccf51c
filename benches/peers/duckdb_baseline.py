#!/usr/bin/env python3
"""DuckDB as a peer for bench-suite: a generic engine on both cores with a fast JSON reader.

Reads Okta System Log NDJSON into a 15-column Parquet file, then runs impossible travel
(haversine between a user's consecutive successful sign-ins, over 900 km/h and 500 km) and
brute force (8 failed sign-ins of a user within 10 minutes) as SQL window queries. No
reorder buffer, deduplication, risk or the other detections: less work than `idgw replay`.

    duckdb_baseline.py EVENTS.ndjson WORKDIR

Prints one JSON line: events, seconds (wall, ingest plus both queries), events_per_s,
ingest_s, queries_s, alerts by kind.
"""

import json
import os
import sys
import time

import duckdb

SIGN_IN = "('user.session.start', 'user.authentication.sso', 'user.authentication.auth_via_mfa')"
FAILED_KINDS = (
    "('user.session.start', 'user.authentication.sso', 'user.authentication.auth_via_mfa', "
    "'user.authentication.auth_via_IDP', 'user.authentication.verify')"
)

INGEST = """
COPY (
  SELECT
    uuid,
    CAST(published AS TIMESTAMP) AS published,
    eventType AS event_type,
    actor.id AS user_id,
    actor.alternateId AS login,
    client.ipAddress AS ip,
    CAST(client.geographicalContext.geolocation.lat AS DOUBLE) AS lat,
    CAST(client.geographicalContext.geolocation.lon AS DOUBLE) AS lon,
    client.geographicalContext.country AS country,
    client.geographicalContext.city AS city,
    outcome.result AS result,
    outcome.reason AS reason,
    client.userAgent.rawUserAgent AS user_agent,
    severity,
    displayMessage AS display_message
  FROM read_json(?, format = 'newline_delimited', ignore_errors = true,
                 columns = {
                   uuid: 'VARCHAR', published: 'VARCHAR', eventType: 'VARCHAR',
                   actor: 'STRUCT(id VARCHAR, alternateId VARCHAR)',
                   client: 'STRUCT(ipAddress VARCHAR, userAgent STRUCT(rawUserAgent VARCHAR),
                                   geographicalContext STRUCT(country VARCHAR, city VARCHAR,
                                     geolocation STRUCT(lat DOUBLE, lon DOUBLE)))',
                   outcome: 'STRUCT(result VARCHAR, reason VARCHAR)',
                   severity: 'VARCHAR', displayMessage: 'VARCHAR'
                 })
) TO '{parquet}' (FORMAT parquet)
"""

TRAVEL = f"""
WITH s AS (
  SELECT user_id, published, lat, lon,
         lag(published) OVER w AS prev_t, lag(lat) OVER w AS prev_lat, lag(lon) OVER w AS prev_lon
  FROM '{{parquet}}'
  WHERE event_type IN {SIGN_IN} AND result = 'SUCCESS' AND lat IS NOT NULL AND user_id IS NOT NULL
  WINDOW w AS (PARTITION BY user_id ORDER BY published)
), d AS (
  SELECT user_id, published,
         2 * 6371 * asin(sqrt(least(1.0,
           pow(sin(radians(lat - prev_lat) / 2), 2)
           + cos(radians(prev_lat)) * cos(radians(lat)) * pow(sin(radians(lon - prev_lon) / 2), 2)))) AS km,
         greatest(epoch(published) - epoch(prev_t), 1) / 3600.0 AS hours
  FROM s WHERE prev_t IS NOT NULL
)
SELECT count(*) FROM d WHERE km > 500 AND km / hours > 900
"""

BRUTE = f"""
WITH f AS (
  SELECT user_id, published,
         count(*) OVER (PARTITION BY user_id ORDER BY published
                        RANGE BETWEEN INTERVAL 10 MINUTE PRECEDING AND CURRENT ROW) AS n
  FROM '{{parquet}}'
  WHERE event_type IN {FAILED_KINDS} AND result IN ('FAILURE', 'DENY') AND user_id IS NOT NULL
)
SELECT count(*) FROM f WHERE n = 8
"""


def main():
    events_path, work = sys.argv[1], sys.argv[2]
    os.makedirs(work, exist_ok=True)
    parquet = os.path.join(work, "duckdb-events.parquet")
    with open(events_path, "rb") as f:
        events = sum(1 for _ in f)
    con = duckdb.connect()
    started = time.perf_counter()
    con.execute(INGEST.replace("{parquet}", parquet), [events_path])
    ingested = time.perf_counter()
    travel = con.execute(TRAVEL.replace("{parquet}", parquet)).fetchone()[0]
    brute = con.execute(BRUTE.replace("{parquet}", parquet)).fetchone()[0]
    done = time.perf_counter()
    seconds = done - started
    print(json.dumps({
        "peer": f"DuckDB {duckdb.__version__} (NDJSON to Parquet, two SQL window queries)",
        "events": events,
        "seconds": round(seconds, 3),
        "events_per_s": round(events / seconds, 1) if seconds > 0 else None,
        "ingest_s": round(ingested - started, 3),
        "queries_s": round(done - ingested, 3),
        "alerts": {"impossible_travel": travel, "brute_force": brute},
    }))


if __name__ == "__main__":
    main()
