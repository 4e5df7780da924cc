"""The Bluesky kind, over the `atproto` SDK: the client (client.py), its XRPC calls and
errors (xrpc.py), the rules that need
no SDK (rules.py) and the kind's settings and checks (kind.py). The only room of the
daemon that imports `atproto`.

May import: `bot.config`, `bot.core`; no other publisher kind.
"""
