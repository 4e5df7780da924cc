"""The `bot` command line (Click): each module parses flags and calls the rooms below.

    cli.py        the `bot` group and its small commands (run, train, eval, setup, ...)
    app.py        App: the config, the verbosity and the shared options
    preview.py    bot preview and bot post
    check.py      bot check
    status.py     bot status
    report.py     bot report (an HTML page)
    new.py        bot new: a persona from an account or a book
    evaluate.py   bot eval: how believable a persona's posts are
    scrape.py     bot scrape: gather a corpus
    figures.py    eval.json: the last `bot eval` figures, and their lines
    budget.py     how `bot new --minutes` is shared between training, critic and eval
    config_file.py  a persona added to config.yaml, its comments kept (ruamel.yaml)

May import: everything. `bot.train` only inside a command function, so `bot --help`
and `bot run` never load TensorFlow.
"""
