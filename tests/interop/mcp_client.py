"""Drives the real `idgw gateway` with the official Python MCP SDK (package `mcp`).

usage: mcp_client.py stdio IDGW STORE [--act LOGIN] [--legacy]
       mcp_client.py http URL [--token BEARER] [--act LOGIN] [--legacy]
       mcp_client.py signin IDGW STORE APPROVE_URL

signin starts the gateway over stdio with OAuth (the environment names the issuer and the
client) and signs in through the tools: initiate_device_auth, the person's approval (a POST
of the user code to APPROVE_URL stands in for the verification page), complete_device_auth;
then checks that tools/list and tools/call follow the granted scopes.

Lists the tools, calls every read tool against the store and checks the structured results
and the tool errors. With --act, also acts on the Okta user LOGIN (the gateway must be
configured with an Okta backend, e.g. the simulator): suspend_user approved by elicitation
(this client answers the form), a repeated suspend, the audit log, rollback, a declined
approval, read_user and search_logs. Prints one JSON line with what it saw; exits 1 with
the reason on the first failed check.
"""

import asyncio
import json
import os
import sys

from mcp import Client, StdioServerParameters, types
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

READ_TOOLS = {
    "analyze_identity_state",
    "list_alerts",
    "explain_alert",
    "search_events",
    "similar_users",
    "query_sql",
    "detect_impossible_travel",
    "detect_anomalies_ml",
}

# What a caller holding every scope sees besides the read tools (--dev-no-auth grants all).
ACTION_TOOLS = {
    "suspend_user",
    "unsuspend_user",
    "reactivate_user",
    "reset_password",
    "revoke_sessions",
    "notify_user",
    "rollback",
    "read_user",
    "search_logs",
    "get_audit_log",
}

# The human at this client: what the elicitation forms asked, and whether to approve.
ELICITED = []
APPROVE = [True]


async def answer_elicitation(context, params):
    ELICITED.append(params.message)
    return types.ElicitResult(action="accept", content={"approve": APPROVE[0]})


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


async def exercise_actions(client, login, seen):
    # Evidence must be about the user acted on: one of the user's own stored events.
    event_id = (await call(client, "search_events", {"user": login, "limit": 1}))["items"][0]["event_id"]
    reasoning = f"event {event_id} shows a sign-in pattern that needs containment"
    args = {"user_login": login, "reasoning": reasoning, "evidence": [event_id]}
    done = await call(client, "suspend_user", args)
    check(done["status"] == "success", f"suspend_user: {done}")
    check(done["post_state"]["status"] == "SUSPENDED", f"suspend_user post_state: {done}")
    check(any(login in m for m in ELICITED), f"the approval form names the user: {ELICITED}")
    again = await call(client, "suspend_user", args)
    check(again["status"] == "no_change", f"repeated suspend: {again}")
    records = (await call(client, "get_audit_log", {"user_login": login, "limit": 20}))["records"]
    intent = [r for r in records if r["phase"] == "intent" and r["transaction_id"] == done["transaction_id"]]
    # Demo gateways only (--dev-no-auth): the client's own form counts, and the record says so.
    check(intent and intent[0]["approval"]["method"] == "dev-no-auth-client", f"audited approval: {records}")
    check("not authenticated" in intent[0]["approval"]["approver"], f"audited approver: {intent[0]['approval']}")
    check(intent[0]["reasoning"] == reasoning and intent[0]["evidence"] == [event_id], "audited reasoning")
    undone = await call(client, "rollback", {"transaction_id": done["transaction_id"], "reasoning": "confirmed with the user; the travel was real"})
    check(undone["status"] == "success" and undone["post_state"]["status"] == "ACTIVE", f"rollback: {undone}")
    check(undone["rollback_of"] == done["transaction_id"], "rollback links the original")
    APPROVE[0] = False
    await call_error(client, "suspend_user", args, "did not approve")
    APPROVE[0] = True
    user = await call(client, "read_user", {"user_login": login})
    check(user["user"]["status"] == "ACTIVE", f"read_user after a declined suspend: {user}")
    live = await call(client, "search_logs", {"filter": 'eventType eq "user.lifecycle.suspend"', "limit": 5})
    check(live["count"] >= 1, f"search_logs sees the suspend: {live}")
    seen["actions"] = {"suspended": done["transaction_id"], "elicitations": len(ELICITED), "audit_records": len(records)}


async def exercise(target, act=None, legacy=False):
    seen = {}
    # "legacy" is the initialize handshake (2025-11-25: approvals by elicitation requests);
    # the default negotiates 2026-07-28 (approvals by input-required results).
    mode = "legacy" if legacy else "auto"
    async with Client(target, elicitation_callback=answer_elicitation, mode=mode) as client:
        tools = (await client.list_tools()).tools
        names = {t.name for t in tools}
        check(READ_TOOLS <= names, f"tools: {sorted(names)}")
        check(names - READ_TOOLS <= ACTION_TOOLS, f"unexpected tools: {sorted(names - READ_TOOLS)}")
        for t in tools:
            check(t.input_schema and t.input_schema.get("type") == "object", f"{t.name}: input schema")
            check(t.output_schema and t.output_schema.get("type") == "object", f"{t.name}: output schema")
            read_only = t.annotations is not None and t.annotations.read_only_hint is True
            check(read_only == (t.name in READ_TOOLS | {"read_user", "search_logs", "get_audit_log"}), f"{t.name}: readOnlyHint")
            if t.name in ("suspend_user", "reset_password", "revoke_sessions", "rollback"):
                check(t.annotations.destructive_hint is True, f"{t.name}: destructiveHint")
        seen["tools"] = sorted(names)
        seen["protocol_version"] = client.protocol_version
        if act:
            await exercise_actions(client, act, seen)

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


async def signin(idgw, store, approve_url):
    import urllib.request

    seen = {}
    target = StdioServerParameters(command=idgw, args=["gateway", "serve", "--store", store, "--stdio"], env=dict(os.environ))
    async with Client(target) as client:
        names = {t.name for t in (await client.list_tools()).tools}
        check(names == {"initiate_device_auth", "complete_device_auth"}, f"before sign-in: {sorted(names)}")
        await call_error(client, "list_alerts", {}, "not signed in")
        started = await call(client, "initiate_device_auth", {"tools": ["list_alerts", "explain_alert"]})
        check(started["scopes"] == ["mcp:logs:read"], f"requested scopes: {started}")
        check(started["verification_uri"].startswith("http"), f"verification uri: {started}")
        # Nobody approved yet: the tool answers "pending" well inside an MCP client's 60 s.
        import time

        t0 = time.monotonic()
        waiting = await call(client, "complete_device_auth", {"device_code": started["device_code"]})
        waited = time.monotonic() - t0
        check(waiting["status"] == "pending" and waited < 30, f"pending after {waited:.1f} s: {waiting}")
        seen["pending_after_s"] = round(waited, 1)
        body = json.dumps({"user_code": started["user_code"], "login": "analyst@example.com"}).encode()
        request = urllib.request.Request(approve_url, data=body, method="POST", headers={"content-type": "application/json"})
        with urllib.request.urlopen(request) as answer:
            check(answer.status == 204, f"approval: {answer.status}")
        done = await call(client, "complete_device_auth", {"device_code": started["device_code"]})
        check(done["status"] == "authorized" and done["principal"] == "analyst@example.com", f"complete: {done}")
        names = {t.name for t in (await client.list_tools()).tools}
        check({"list_alerts", "explain_alert", "search_events", "search_logs"} <= names, f"after sign-in: {sorted(names)}")
        check("suspend_user" not in names and "query_sql" not in names, f"beyond the scopes: {sorted(names)}")
        alerts = await call(client, "list_alerts", {"limit": 1})
        check(len(alerts["items"]) == 1, "list_alerts after sign-in")
        await call_error(client, "query_sql", {"sql": "SELECT 1"}, "needs the scope mcp:sql:read")
        seen["principal"] = done["principal"]
        seen["scopes"] = done["scopes"]
        seen["tools_after"] = sorted(names)
    return seen


def option(name):
    if name in sys.argv:
        return sys.argv[sys.argv.index(name) + 1]
    return None


def main():
    mode = sys.argv[1]
    act = option("--act")
    if mode == "stdio":
        idgw, store = sys.argv[2], sys.argv[3]
        # The gateway reads its Okta backend (OKTA_ORG_URL, OKTA_API_TOKEN) from the environment.
        target = StdioServerParameters(
            command=idgw, args=["gateway", "serve", "--store", store, "--stdio", "--dev-no-auth"], env=dict(os.environ)
        )
    elif mode == "signin":
        try:
            seen = asyncio.run(signin(sys.argv[2], sys.argv[3], sys.argv[4]))
        except AssertionError as e:
            print(f"CHECK FAILED (signin): {e}", file=sys.stderr)
            sys.exit(1)
        print(json.dumps(seen))
        return
    elif mode == "http":
        token = option("--token")
        headers = {"Authorization": f"Bearer {token}"} if token else None
        target = streamable_http_client(sys.argv[2], http_client=create_mcp_http_client(headers=headers))
    else:
        raise SystemExit(f"unknown mode {mode}")
    try:
        seen = asyncio.run(exercise(target, act, "--legacy" in sys.argv))
    except AssertionError as e:
        print(f"CHECK FAILED ({mode}): {e}", file=sys.stderr)
        sys.exit(1)
    seen["mode"] = mode
    print(json.dumps(seen))


if __name__ == "__main__":
    main()
