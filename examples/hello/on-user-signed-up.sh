#!/bin/sh
# Event handler: the event arrives as JSON on stdin; printing {"enqueue":…}
# enqueues commands in the same transaction as the event's success.
exec python3 -c '
import json, sys
event = json.load(sys.stdin)
email = event["data"].get("email", "unknown@example.org")
print(json.dumps({"enqueue": [{"type": "SendWelcomeEmail",
                               "data": {"user_id": event["entity_id"], "email": email}}]}))
'
