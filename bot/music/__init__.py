"""Music personas: ABC tunes read as bars of notes (abc.py), the music filters
(filters.py), the external tools (tools.py) and rendering to sound and score (render.py).

Stdlib and NumPy only; the parsing that decides whether a tune is valid ABC is done by
abcmidi's abc2midi, a maintained tool, not here.

May import: `bot.engine` (Candidate, Verdict), `bot.config`, `bot.core`.
"""
