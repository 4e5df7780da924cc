"""Offline training (`bot train`, `bot new`) and measuring (`bot eval`): Keras/TensorFlow,
scikit-learn. Used by `bot.commands` only, inside the command functions.

    trainer.py    train(): corpus -> model.keras + card.json, resumable, within a budget
    settings.py   TrainConfig: every knob, saved in the card
    loop.py       the window dataset, the budget and the per-epoch checkpoints
    model.py      the Keras model
    data.py       the corpus read and split, the vocabulary (NumPy only)
    curate.py     the word list and the critic a persona chooses with
    quality.py    bot eval's judges (scikit-learn)
    sense.py      bot eval's sense proxy: an independent English model (GGUF) read in NumPy
    sense.py      bot eval's sense proxy: an English model's loss per character (gguf)
    artifacts.py  the persona folder written atomically, the loss plot
    quiet.py      TensorFlow's start-up noise kept out of the terminal

May import: everything below `bot.commands`; never `bot.daemon`.
"""
