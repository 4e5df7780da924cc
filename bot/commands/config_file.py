"""Adding a persona to config.yaml as `bot new` does: a round trip through ruamel.yaml, so
the owner's comments, order and layout stay as they were."""

from __future__ import annotations

from pathlib import Path

from bot.core.errors import ConfigError

COMMENT_COLUMN = 37  # where the shipped config.yaml's persona comments start


def add_persona(config_path: Path, name: str, model: str) -> bool:
    """Add `personas.NAME` (outbox, the model folder) to the config file, keeping every
    comment, key order and style of the rest (a ruamel.yaml round trip); a missing file is
    created. Returns False when the persona is already there (nothing is written)."""
    from ruamel.yaml import YAML
    from ruamel.yaml.comments import CommentedMap
    from ruamel.yaml.error import YAMLError
    from ruamel.yaml.util import load_yaml_guess_indent

    yaml = YAML()  # round-trip mode
    yaml.preserve_quotes = True
    yaml.width = 4096  # never re-wrap the user's long lines
    text = config_path.read_text(encoding="utf-8") if config_path.exists() else ""
    try:
        _, sequence, offset = load_yaml_guess_indent(text) if text.strip() else (None, 2, 0)
        mapping = _mapping_indent(text)
        yaml.indent(mapping=mapping, sequence=sequence or mapping, offset=offset or 0)
        data = yaml.load(text) if text.strip() else None
    except YAMLError as err:
        raise ConfigError(f"{config_path}: not valid YAML ({err.__class__.__name__})",
                          "fix the YAML syntax, then run `bot new` again") from None  # fmt: skip
    if data is None:
        data = CommentedMap()
    if not isinstance(data, dict):
        raise ConfigError(f"{config_path}: the top level is not a mapping", "fix the config file")
    personas = data.get("personas")
    if personas is None:
        personas = data["personas"] = CommentedMap()
    if not isinstance(personas, dict):
        raise ConfigError(f"{config_path}: personas is not a mapping", "fix the config file")
    if name in personas:
        there = personas[name].get("model") if isinstance(personas[name], dict) else None
        if there is not None and Path(str(there)) != Path(model):
            raise ConfigError(
                f"{config_path}: personas.{name} is already there, with model {there}, not {model}",
                f"rename or remove it there, or make it in {there} with -o",
            )
        return False
    entry = CommentedMap()
    entry["model"] = model
    entry["publisher"] = "outbox"
    entry.yaml_add_eol_comment("written by `bot new`", "model", column=COMMENT_COLUMN)
    entry.yaml_add_eol_comment("$REVENANT_HOME/outbox/; `mastodon` to post (README)",
                               "publisher", column=COMMENT_COLUMN)  # fmt: skip
    personas[name] = entry
    tmp = config_path.with_name(f".{config_path.name}.tmp")
    with tmp.open("w", encoding="utf-8") as handle:
        yaml.dump(data, handle)
    tmp.replace(config_path)
    return True


def _mapping_indent(text: str) -> int:
    """The indent of the file's first nested mapping key (2 when there is none): ruamel's
    own guess reads the sequences' indent, which may differ."""
    import re

    for line in text.splitlines():
        found = re.match(r"( +)[^\s#-][^:#]*:(\s|$)", line)
        if found:
            return len(found.group(1))
    return 2
