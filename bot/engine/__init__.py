"""The engine: a persona's trained model run in NumPy (and the optional C loop), no
TensorFlow.

    card.py          card.json: vocabulary, architecture, metrics (the artifact's contract)
    lstm_weights.py  the .keras file's weights, read with h5py
    sampler.py       Sampler: prime, sample N candidates in one batch, score them
    native.py        the batch-1 loop in C (_lstm.c), on every core
    draw.py          one draw from the logits: temperature, top-k, top-p, sentence ends
    vocab.py         the word list: only words the author used (WordTrie)
    critic.py        the persona's critic in NumPy (critic.npz)
    novelty.py       the corpus' n-gram index: nothing copied
    candidate.py     Candidate and Verdict: a sample and what the filters said of it
    engines.py       one factory from the card's kind to its engine
    modelcache.py    loaded models shared by personas, reloaded when the files change

May import: `bot.config`, `bot.core`.
"""
