#!/bin/sh
# Command handler: "sends" the email (here it only prints what it would
# send), then chains the next step. A non-zero exit would fail the command
# with the end of stderr as its error, and lote would retry it.
exec python3 -c '
import json, sys
cmd = json.load(sys.stdin)
email = cmd["data"]["email"]
print("welcome email to %s (attempt %d)" % (email, cmd["attempt"]), file=sys.stderr)
print(json.dumps({"enqueue": [{"type": "RecordWelcomeSent", "data": cmd["data"]}]}))
'
