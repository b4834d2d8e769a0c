"""A tiny GraphQL client for convtrack, Python standard library only.

Every example imports it: `call(key, query, variables)` posts one GraphQL
request and returns `data`, or raises `ConvtrackError` with the error's
`extensions.code` (README "Errors"), so a caller can tell a retry-worthy
failure (`SERVICE_UNAVAILABLE`, `RATE_LIMITED`) from a mistake
(`BAD_USER_INPUT`).
"""

import json
import os
import urllib.error
import urllib.request

URL = os.environ.get("CONVTRACK_URL", "http://127.0.0.1:8000").rstrip("/")


class ConvtrackError(Exception):
    def __init__(self, code, message):
        super().__init__(f"{code}: {message}")
        self.code = code


def key(role):
    """The API key of `role` (AGENT, CHECKOUT, INTEGRATOR) from the
    environment: CONVTRACK_AGENT_KEY and so on."""
    name = f"CONVTRACK_{role}_KEY"
    value = os.environ.get(name)
    if not value:
        raise SystemExit(f"set {name} (convtrack keys create --tenant default --role {role})")
    return value


def call(api_key, query, variables=None):
    body = json.dumps({"query": query, "variables": variables or {}}).encode()
    request = urllib.request.Request(
        f"{URL}/graphql",
        data=body,
        headers={
            "Content-Type": "application/json",
            "Accept": "application/graphql-response+json",
            "Authorization": f"Bearer {api_key}",
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            answer = json.load(response)
    except urllib.error.HTTPError as failed:
        # Errors come with a GraphQL body too (401, 413, 429, 503 …).
        answer = json.load(failed)
    if answer.get("errors"):
        first = answer["errors"][0]
        code = first.get("extensions", {}).get("code", "UNKNOWN")
        raise ConvtrackError(code, first.get("message", ""))
    return answer["data"]
