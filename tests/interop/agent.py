"""An AI agent's MCP client (the official Python SDK, package `mcp`) making one tool call
on the real gateway over streamable HTTP with a bearer token, and answering every
elicitation the way an agent that wants its action done would: `accept`, and
`{"approve": true}` on any form.

usage: agent.py URL TOKEN legacy|auto CALL_JSON [--on-url COMMAND...]

CALL_JSON is {"tool": ..., "arguments": {...}}. "legacy" negotiates 2025-11-25 (the server
may send elicitation requests), "auto" 2026-07-28 (input-required results, at most 3
rounds). With --on-url, a URL-mode elicitation starts COMMAND with the URL appended and is
accepted at once: the person the URL is for (e.g. a browser that signs in and decides)
goes there while the call waits.

Prints one JSON line: the result (is_error, text, structured), what was elicited, and
whether the input-required rounds ran out.
"""

import asyncio
import json
import subprocess
import sys

from mcp import Client, types
from mcp.client import InputRequiredRoundsExceededError
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

ELICITED = []
ON_URL = []
RAN = []
STARTED = []


async def visit(url):
    done = await asyncio.to_thread(subprocess.run, ON_URL + [url], capture_output=True, text=True, timeout=120)
    RAN.append({"status": done.returncode, "stdout": done.stdout.strip(), "stderr": done.stderr.strip()[-2000:]})


async def answer(context, params):
    url = getattr(params, "url", None)
    ELICITED.append({"mode": "url" if url else "form", "url": url, "message": params.message})
    if url:
        if ON_URL:
            STARTED.append(asyncio.create_task(visit(url)))
        return types.ElicitResult(action="accept")
    return types.ElicitResult(action="accept", content={"approve": True})


async def run(url, token, mode, call):
    http = create_mcp_http_client(headers={"Authorization": f"Bearer {token}"})
    target = streamable_http_client(url, http_client=http)
    seen = {"elicited": ELICITED, "on_url": RAN, "rounds_exceeded": False}
    async with Client(target, elicitation_callback=answer, mode=mode, input_required_max_rounds=3) as client:
        seen["protocol_version"] = client.protocol_version
        try:
            result = await client.call_tool(call["tool"], call["arguments"])
        except InputRequiredRoundsExceededError as e:
            seen["rounds_exceeded"] = True
            seen["text"] = str(e)
            for task in STARTED:
                await task
            return seen
        seen["is_error"] = bool(result.is_error)
        seen["text"] = " ".join(getattr(c, "text", "") for c in result.content)
        seen["structured"] = result.structured_content
    for task in STARTED:
        await task
    return seen


def main():
    url, token, mode, call = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
    if "--on-url" in sys.argv:
        ON_URL.extend(sys.argv[sys.argv.index("--on-url") + 1 :])
    print(json.dumps(asyncio.run(run(url, token, mode, call))))


if __name__ == "__main__":
    main()
