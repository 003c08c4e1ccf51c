"""MCP tool latency over streamable HTTP, from the official Python MCP SDK (package `mcp`) in a
separate process: the HTTP half of bench-mcp (which measures stdio with rmcp's client).

    python3 benches/mcp_http_latency.py http://127.0.0.1:PORT/mcp CALLS SEED

Picks users, alerts and a 30-day window from the store through `query_sql`, makes 10
warm-up calls and then CALLS calls of each tool (the same set and arguments as bench-mcp),
and prints JSON: per tool p50/p99/max in milliseconds and the errors. The times include
the SDK's own work per call (JSON-RPC framing, pydantic validation), as any Python agent
would see them.
"""
import asyncio
import json
import random
import sys
import time

from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client


async def rows(client, sql):
    result = await client.call_tool("query_sql", {"sql": sql})
    if result.is_error:
        return []
    return result.structured_content.get("rows", [])


def percentile(sorted_ms, p):
    if not sorted_ms:
        return 0.0
    return sorted_ms[round((len(sorted_ms) - 1) * p)]


async def main(url, calls, seed):
    rng = random.Random(seed)
    started = time.perf_counter()
    async with Client(streamable_http_client(url, http_client=create_mcp_http_client())) as client:
        await client.call_tool("list_alerts", {"limit": 1})
        first_ms = (time.perf_counter() - started) * 1000
        users = [r["user_login"] for r in await rows(client, "SELECT user_login FROM identity_state WHERE user_login IS NOT NULL")]
        alerted = [r["user_login"] for r in await rows(client, "SELECT user_login FROM alerts WHERE user_login IS NOT NULL")]
        alerts = [r["alert_id"] for r in await rows(client, "SELECT alert_id FROM alerts")]
        if not users or not alerts:
            sys.exit("mcp_http_latency: the store has no users or no alerts")
        last = await rows(client, "SELECT CAST(max(event_time) AS VARCHAR) AS t FROM events")
        since = None
        if last and last[0].get("t"):
            from datetime import datetime, timedelta

            end = datetime.fromisoformat(last[0]["t"].replace("Z", "+00:00").replace(" ", "T"))
            since = (end - timedelta(days=30)).strftime("%Y-%m-%dT%H:%M:%SZ")
        pick = lambda xs: rng.choice(xs) if xs else "nobody"
        tools = [
            ("analyze_identity_state", "analyze_identity_state", lambda: {"user": pick(users), "time_range_hours": 24}),
            ("list_alerts", "list_alerts", lambda: {"limit": 50}),
            ("list_alerts (one user)", "list_alerts", lambda: {"user": pick(alerted or users), "limit": 50}),
            ("search_events (one user, 30 days)", "search_events", lambda: {"user": pick(users), "since": since, "limit": 100} if since else {"user": pick(users), "limit": 100}),
            ("explain_alert", "explain_alert", lambda: {"alert_id": pick(alerts)}),
            ("similar_users", "similar_users", lambda: {"user": pick(users), "k": 10}),
        ]
        report = {}
        for label, tool, make in tools:
            times, errors, first_error = [], 0, None
            for i in range(calls + 10):
                args = make()
                t = time.perf_counter()
                try:
                    result = await client.call_tool(tool, args)
                    failed = result.is_error
                    detail = result.content
                except Exception as e:  # a transport failure counts as an error, with its text
                    failed, detail = True, str(e)
                elapsed = (time.perf_counter() - t) * 1000
                if failed:
                    errors += 1
                    first_error = first_error or f"{tool}: {detail}"
                elif i >= 10:
                    times.append(elapsed)
            times.sort()
            report[label] = {
                "calls": len(times),
                "p50_ms": percentile(times, 0.50),
                "p99_ms": percentile(times, 0.99),
                "max_ms": times[-1] if times else 0.0,
                "errors": errors,
                "first_error": first_error,
            }
    print(json.dumps({
        "transport": "http",
        "client": "python mcp",
        "start_to_first_call_ms": first_ms,
        "calls_per_tool": calls,
        "tools": report,
    }))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]) if len(sys.argv) > 3 else 7))
