"""Publishers: where posts go. The outbox is the embedded default; Mastodon is the real one.

Each kind registers itself with `registry` (bot/config/registry.py);
`bot.config.registry.build_publisher` asks the persona's kind to build one, so the Mastodon
client (and its token) is only ever constructed when a post is really sent.

One package or module per kind: outbox.py, mastodon/, bluesky/. Kinds never import each
other (an independence contract in CI). May import: `bot.config`, `bot.core`.
"""
