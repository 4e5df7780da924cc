"""`python -m bot` runs the CLI."""

from bot.commands.cli import cli

if __name__ == "__main__":
    cli()
