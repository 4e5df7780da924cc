"""The daemon (`bot run`): APScheduler wakes each persona at its slots.

    scheduler.py  Daemon: jobs, wakes, reloads, shutdown
    slots.py      a persona's slots: keys, the next one, the ones missed
    lifecycle.py  start-up checks, heartbeats, the other daemons on the store
    health.py     crashes, backoff and disabling a persona that keeps failing
    state.py      what a wake needs to know of the persona and the store

May import: `bot.posting` and everything below it. Never `bot.train`, TensorFlow, Keras
or scikit-learn (an import contract in CI).
"""
