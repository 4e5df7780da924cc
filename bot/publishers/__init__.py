"""Publishers: where posts go. The outbox is the embedded default; Mastodon is the real one.

`bot.persona.build_publisher` turns a persona's config into one of these, so the Mastodon
client (and its token) is only ever constructed when a post is really sent.
"""
