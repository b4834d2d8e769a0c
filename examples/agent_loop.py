"""The agent runtime's side of one conversation, start to finish:

1. startSession when the chat opens (with an idempotency key, so a retry
   after a timeout gets the same session; with labels, so outcomes can be
   split by prompt version);
2. appendMessage for every message, visitor's and agent's (keyed too);
3. createCtaLink when the AI offers a next step: the reply carries `url`;
4. requestConfirmation for what the AI completes itself, then confirm when
   the person says yes or cancelConfirmation when they say no.

Run: CONVTRACK_AGENT_KEY=ctk_… python3 examples/agent_loop.py
Prints the session ID and the link, for examples/checkout.py.
"""

import uuid

from convtrack import call, key

AGENT = key("AGENT")
run = uuid.uuid4().hex[:8]  # keys unique to this run of the example

started = call(
    AGENT,
    """mutation($input: StartSessionInput!) {
         startSession(input: $input) { sessionId resumed } }""",
    {
        "input": {
            "channel": "CHAT",
            "idempotencyKey": f"chat-open-{run}",
            "labels": [{"key": "prompt", "value": "v7"}, {"key": "model", "value": "m1"}],
        }
    },
)["startSession"]
session_id = started["sessionId"]

APPEND = """mutation($input: AppendMessageInput!) {
              appendMessage(input: $input) { message { id position truncated } } }"""
for n, (role, content) in enumerate(
    [
        ("VISITOR", "Hi! Can I work from your Lisbon space tomorrow?"),
        ("AI_AGENT", "Yes: a day pass covers a desk, coffee and the meeting rooms."),
    ]
):
    message = {"sessionId": session_id, "role": role, "content": content,
               "idempotencyKey": f"msg-{run}-{n}"}
    first = call(AGENT, APPEND, {"input": message})["appendMessage"]["message"]
    # A retry with the same key (say the answer was lost) stores nothing twice.
    again = call(AGENT, APPEND, {"input": message})["appendMessage"]["message"]
    assert again == first, (again, first)

link = call(
    AGENT,
    """mutation($input: CreateCtaLinkInput!) {
         createCtaLink(input: $input) { url token trackedUrl } }""",
    {"input": {"sessionId": session_id, "action": "DAY_PASS",
               "targetUrl": "https://book.example.com/day-pass"}},
)["createCtaLink"]

REQUEST = """mutation($input: RequestConfirmationInput!) {
               requestConfirmation(input: $input) { id expiresAt } }"""
booking = call(AGENT, REQUEST, {"input": {
    "sessionId": session_id, "action": "BOOKING_CONFIRMATION",
    "summary": "Meeting room Lisbon, Thu 14:00-15:00"}})["requestConfirmation"]
confirmed = call(
    AGENT,
    """mutation($input: ConfirmInput!) {
         confirm(input: $input) { created conversion { kind source } } }""",
    {"input": {"confirmationId": booking["id"], "recordId": f"booking-{run}"}},
)["confirm"]
assert confirmed["conversion"]["kind"] == "BOOKING_CREATED", confirmed

tour = call(AGENT, REQUEST, {"input": {
    "sessionId": session_id, "action": "TOUR_REQUEST",
    "summary": "Tour of Lisbon, Friday 10:00"}})["requestConfirmation"]
declined = call(
    AGENT,
    """mutation($input: CancelConfirmationInput!) {
         cancelConfirmation(input: $input) { cancelled } }""",
    {"input": {"confirmationId": tour["id"], "reason": "found another date"}},
)["cancelConfirmation"]
assert declined["cancelled"] is True, declined

print(f"session {session_id}")
print(f"link {link['url']}")
print(f"token {link['token']}")
