#!/usr/bin/env sh
# The shortest path to a tracked conversion, with curl alone: start a
# session, add the visitor's message, record the outcome by session ID,
# and see it in the feed.
#
# Run: CONVTRACK_AGENT_KEY=ctk_… CONVTRACK_CHECKOUT_KEY=ctk_… \
#      CONVTRACK_INTEGRATOR_KEY=ctk_… sh examples/quickstart.sh
set -eu
URL="${CONVTRACK_URL:-http://127.0.0.1:8000}"

gql() { # gql KEY DOCUMENT: the JSON answer; fails on an error
  answer=$(curl -sS "$URL/graphql" -H 'Content-Type: application/json' \
    -H "Authorization: Bearer $1" --data "{\"query\": \"$2\"}")
  case "$answer" in *'"errors"'*) echo "error: $answer" >&2; return 1 ;; esac
  printf '%s\n' "$answer"
}

started=$(gql "$CONVTRACK_AGENT_KEY" 'mutation { startSession(input: { channel: WHATSAPP, contact: \"whatsapp:+351912345678\" }) { sessionId conversation { contact } } }')
session=$(printf '%s' "$started" | sed 's/.*"sessionId":"\([^"]*\)".*/\1/')
echo "session $session (contact stored as $(printf '%s' "$started" | sed 's/.*"contact":"\([^"]*\)".*/\1/'))"

gql "$CONVTRACK_AGENT_KEY" "mutation { appendMessage(input: { sessionId: \\\"$session\\\", role: VISITOR, content: \\\"Can I book a tour on Friday?\\\" }) { message { position } } }" >/dev/null

gql "$CONVTRACK_CHECKOUT_KEY" "mutation { recordConversion(input: { sessionId: \\\"$session\\\", kind: TOUR_BOOKED, recordId: \\\"tour-$session\\\" }) { created attributed } }"

gql "$CONVTRACK_INTEGRATOR_KEY" '{ conversionsSince(first: 1) { nodes { conversion { kind } conversation { sessionId } } } }'
