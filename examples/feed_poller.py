"""An integrator polling the conversion feed: `conversionsSince(after:)`
from the cursor it saved last time, saving `endCursor` after each page.
With `kinds`/`channels` the end cursor still moves past the events that
did not match, so no poll reads a window twice. The cursor lives in a file
here; a real consumer keeps it with the data it wrote, in one transaction.

Run: CONVTRACK_INTEGRATOR_KEY=ctk_… python3 examples/feed_poller.py [cursor-file]
Polls until the feed has nothing new (a real poller sleeps and goes on).
"""

import pathlib
import sys

from convtrack import call, key

INTEGRATOR = key("INTEGRATOR")
saved = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "feed.cursor")
after = saved.read_text().strip() if saved.exists() else None

FEED = """query($after: String) {
  conversionsSince(after: $after, first: 100) {
    nodes { cursor change conversion { kind recordedAt value { amount currency } }
            conversation { sessionId channel labels { key value } } }
    pageInfo { endCursor hasNextPage } } }"""
seen = 0
while True:
    page = call(INTEGRATOR, FEED, {"after": after})["conversionsSince"]
    for event in page["nodes"]:
        labels = ", ".join(f"{l['key']}={l['value']}" for l in
                           (event["conversation"] or {}).get("labels", []))
        print(f"{event['change']} {event['conversion']['kind']} [{labels}]")
        seen += 1
    after = page["pageInfo"]["endCursor"] or after
    if after:
        saved.write_text(after)
    if not page["pageInfo"]["hasNextPage"]:
        break
print(f"{seen} events; resume from {saved}")
