"""The Mastodon kind, over Mastodon.py: the client (client.py), the API's rules (api.py),
its errors translated (errors.py),
media uploads (media.py) and the kind's settings and checks (kind.py).

May import: `bot.config`, `bot.core`; no other publisher kind.
"""
