"""Publishers: where posts go. The outbox is the embedded default; Mastodon is the real one.

Each kind registers itself with `registry` (bot/publishers/registry.py);
`bot.persona.build_publisher` asks the persona's kind to build one, so the Mastodon
client (and its token) is only ever constructed when a post is really sent.
"""
