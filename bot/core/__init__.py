"""The lowest layer: what every other room needs and nothing of theirs.

    errors.py   BotError and its kinds, each with a one-line hint (the CLI prints it)
    log.py      logging set-up and secret masking (register_secret)
    clock.py    the injectable clock (tests step it)
    faults.py   fault injection for the exactly-once tests (REVENANT_FAULT)
    memory.py   resident memory of this process
    post.py     Post, Media, Receipt and the Publisher protocol: what a post is, for
                posting, publishers and the store alike

May import: the standard library and third-party packages only; nothing else of `bot`.
"""
