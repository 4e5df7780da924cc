"""Posting: one persona's wake, from the model's candidates to one post sent exactly once.

    persona.py    Persona: compose (sample, filter, rank), then publish through delivery
    filters.py    the candidate filters, each with a stable reason, and ranking
    delivery.py   exactly once: claim, write ahead, send, reconcile, record
    replies.py    answering mentions, with the same guarantees
    mentions.py   reading a mention: who, what, how visible

May import: `bot.music`, `bot.engine`, `bot.publishers`, `bot.store`, `bot.corpus`,
`bot.config`, `bot.core`.
"""
