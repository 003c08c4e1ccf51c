"""Drives the real `idgw gateway` with the official Python MCP SDK (package `mcp`).

usage: mcp_client.py stdio IDGW STORE
       mcp_client.py http URL

Lists the tools, calls every one against the store and checks the structured results and
the tool errors. Prints one JSON line with what it saw; exits 1 with the reason on the
first failed check.
"""

import asyncio
import json
import sys

from mcp import Client, StdioServerParameters

EXPECTED_TOOLS = {
    "analyze_identity_state",
    "list_alerts",
    "explain_alert",
    "search_events",
    "similar_users",
    "query_sql",
    "detect_impossible_travel",
    "detect_anomalies_ml",
}


def check(condition, message):
    if not condition:
        raise AssertionError(message)


async def call(client, name, args):
    result = await client.call_tool(name, args)
    check(not result.is_error, f"{name}({args}) failed: {result.content}")
    data = result.structured_content
    check(isinstance(data, dict), f"{name} returned no structuredContent: {result}")
    return data


async def call_error(client, name, args, needle):
    result = await client.call_tool(name, args)
    check(result.is_error, f"{name}({args}) should be a tool error, got {result.structured_content}")
    text = " ".join(getattr(c, "text", "") for c in result.content)
    check(needle in text, f"{name}({args}) error should mention {needle!r}: {text}")
    return text


async def exercise(target):
    seen = {}
    async with Client(target) as client:
        tools = (await client.list_tools()).tools
        names = {t.name for t in tools}
        check(names == EXPECTED_TOOLS, f"tools: {sorted(names)}")
        for t in tools:
            check(t.input_schema and t.input_schema.get("type") == "object", f"{t.name}: input schema")
            check(t.output_schema and t.output_schema.get("type") == "object", f"{t.name}: output schema")
            check(t.annotations is not None and t.annotations.read_only_hint is True, f"{t.name}: readOnlyHint")
        seen["tools"] = sorted(names)

        page1 = await call(client, "list_alerts", {"limit": 2})
        check(len(page1["items"]) == 2 and page1.get("next_cursor"), f"list_alerts page 1: {page1}")
        page2 = await call(client, "list_alerts", {"limit": 2, "cursor": page1["next_cursor"]})
        ids1 = {a["alert_id"] for a in page1["items"]}
        check(all(a["alert_id"] not in ids1 for a in page2["items"]), "pages overlap")
        high = await call(client, "list_alerts", {"min_severity": "high", "limit": 500})
        check(all(a["severity"] in ("high", "critical") for a in high["items"]), "min_severity")
        alert = page1["items"][0]
        check(isinstance(alert["evidence"], dict), f"evidence is an object: {alert['evidence']!r}")
        seen["alerts_high"] = len(high["items"])

        explained = await call(client, "explain_alert", {"alert_id": alert["alert_id"]})
        check(explained["alert"]["alert_id"] == alert["alert_id"], "explain_alert: the alert")
        check(len(explained["events"]) >= 1 and not explained["missing_events"], f"evidence events: {explained}")
        seen["evidence_events"] = len(explained["events"])

        riskiest = await call(
            client, "query_sql", {"sql": "SELECT user_id FROM identity_state ORDER BY risk_score DESC LIMIT 1"}
        )
        user = riskiest["rows"][0]["user_id"]
        analysis = await call(client, "analyze_identity_state", {"user": user, "time_range_hours": 168})
        check(analysis["user_id"] == user, "analyze: user")
        check(analysis["risk_level"] in ("low", "medium", "high", "critical"), "analyze: risk_level")
        check(analysis["risk_score"] > 0 and analysis["top_reasons"], f"analyze: reasons {analysis}")
        check(analysis["behavior_summary"] and analysis["recommended_actions"], "analyze: summary and actions")
        check(analysis["recent_locations"] and analysis["open_alerts"], "analyze: locations and alerts")
        check(analysis["similar_past_behaviors"], "analyze: similar users from the vector index")
        by_login = await call(client, "analyze_identity_state", {"user": analysis["user_login"]})
        check(by_login["user_id"] == user, "analyze by login")
        seen["risk_level"] = analysis["risk_level"]

        events = await call(client, "search_events", {"user": user, "limit": 5})
        check(1 <= len(events["items"]) <= 5, "search_events: page")
        check(all(e["user_id"] == user for e in events["items"]), "search_events: user filter")
        times = [e["event_time"] for e in events["items"]]
        check(times == sorted(times, reverse=True), "search_events: newest first")

        similar = await call(client, "similar_users", {"user": user, "k": 3})
        check(1 <= len(similar["neighbours"]) <= 3, f"similar_users: {similar}")
        check(all(n["user_id"] != user for n in similar["neighbours"]), "similar_users: not the user itself")

        counted = await call(client, "query_sql", {"sql": "SELECT count(*) AS n FROM events"})
        check(counted["rows"][0]["n"] > 0 and not counted["truncated"], f"query_sql: {counted}")
        seen["events"] = counted["rows"][0]["n"]

        # On-demand detection over stored events, with progress notifications.
        updates = []

        async def on_progress(progress, total, message):
            updates.append(progress)

        result = await client.call_tool(
            "detect_impossible_travel", {"time_range_hours": 168}, progress_callback=on_progress
        )
        check(not result.is_error, f"detect_impossible_travel: {result.content}")
        travel = result.structured_content
        check(travel["scope"] == "all" and travel["events_examined"] == seen["events"], f"travel scope: {travel}")
        check(travel["alerts"], "detect_impossible_travel found the stored tenant's travel")
        check(all(a["detection"] == "impossible_travel" for a in travel["alerts"]), "only travel alerts")
        check(updates and updates == sorted(updates), f"progress notifications in order: {updates}")
        stored = await call(
            client, "query_sql", {"sql": "SELECT count(*) AS n FROM alerts WHERE detection = 'impossible_travel'"}
        )
        check(len(travel["alerts"]) == stored["rows"][0]["n"], "on demand finds what streaming found")
        anomalies = await call(client, "detect_anomalies_ml", {"user": user, "time_range_hours": 72})
        check(anomalies["scope"] == user and anomalies["events_examined"] > 0, f"anomalies: {anomalies}")
        seen["travel_alerts"] = len(travel["alerts"])
        seen["progress_updates"] = len(updates)

        # Resources and prompts.
        listed = (await client.list_resources()).resources
        uris = {str(r.uri) for r in listed}
        check("idgw://schema/events" in uris and "idgw://catalog/detections" in uris, f"resources: {uris}")
        schema = await client.read_resource("idgw://schema/alerts")
        columns = json.loads(schema.contents[0].text)["columns"]
        check(any(c["name"] == "evidence" for c in columns), "alerts schema")
        prompts = {p.name for p in (await client.list_prompts()).prompts}
        check(prompts == {"triage_user", "investigate_alert"}, f"prompts: {prompts}")
        triage = await client.get_prompt("triage_user", {"user": user})
        check(user in triage.messages[0].content.text, "triage prompt names the user")

        await call_error(client, "analyze_identity_state", {"user": "nobody@example.invalid"}, "not found")
        await call_error(client, "explain_alert", {"alert_id": "no-such-alert"}, "not found")
        await call_error(client, "list_alerts", {"min_severity": "severe"}, "min_severity")
        await call_error(client, "query_sql", {"sql": "DROP TABLE events"}, "read-only")
        await call_error(client, "query_sql", {"sql": "SELECT 1; SELECT 2"}, "read-only")
        await call_error(client, "search_events", {"since": "yesterday"}, "RFC 3339")
    return seen


def main():
    mode = sys.argv[1]
    if mode == "stdio":
        idgw, store = sys.argv[2], sys.argv[3]
        target = StdioServerParameters(command=idgw, args=["gateway", "serve", "--store", store, "--stdio"])
    elif mode == "http":
        target = sys.argv[2]
    else:
        raise SystemExit(f"unknown mode {mode}")
    try:
        seen = asyncio.run(exercise(target))
    except AssertionError as e:
        print(f"CHECK FAILED ({mode}): {e}", file=sys.stderr)
        sys.exit(1)
    seen["mode"] = mode
    print(json.dumps(seen))


if __name__ == "__main__":
    main()
