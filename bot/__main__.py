"""`python -m bot` runs the CLI."""

from bot.cli import cli

if __name__ == "__main__":
    cli()
