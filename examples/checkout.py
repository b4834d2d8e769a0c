"""The checkout's side: the person arrived through the AI's link with
`ai_session=<token>` in the URL; when the purchase completes, the checkout
records it with that token and its order number as idempotency key, so a
retried call (a timeout, a webhook delivered twice) records it once.

Run: CONVTRACK_CHECKOUT_KEY=ctk_… python3 examples/checkout.py 'https://book.example.com/day-pass?ai_session=ct2.…'
"""

import sys
import urllib.parse

from convtrack import ConvtrackError, call, key

CHECKOUT = key("CHECKOUT")
landing = sys.argv[1]
token = urllib.parse.parse_qs(urllib.parse.urlsplit(landing).query)["ai_session"][0]
order = "order-" + token[-12:]  # the shop's own order number in real life

RECORD = """mutation($input: RecordConversionInput!) {
  recordConversion(input: $input) { created attributed conversion { id kind source linkAction } } }"""
sale = {
    "linkToken": token,
    "kind": "DAY_PASS_PURCHASED",
    "recordId": order,
    "idempotencyKey": order,
    "value": {"amount": "25.00", "currency": "EUR"},
}
first = call(CHECKOUT, RECORD, {"input": sale})["recordConversion"]
retried = call(CHECKOUT, RECORD, {"input": sale})["recordConversion"]
assert first["created"] and not retried["created"], (first, retried)
assert retried["conversion"]["id"] == first["conversion"]["id"]
print(f"recorded {first['conversion']['kind']} via {first['conversion']['source']}, "
      f"attributed: {first['attributed']}; the retry recorded nothing new")

# A token that was changed on the way is refused, whatever was wrong.
try:
    call(CHECKOUT, RECORD, {"input": {**sale, "linkToken": token[:-2] + "xx",
                                      "idempotencyKey": order + "-forged"}})
    raise SystemExit("a forged token was accepted")
except ConvtrackError as refused:
    assert refused.code == "INVALID_LINK_TOKEN", refused
    print("a forged token: INVALID_LINK_TOKEN")
