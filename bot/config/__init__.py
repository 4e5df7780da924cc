"""Configuration: config.yaml read, validated and frozen into settings dataclasses.

    loader.py     load_config / parse_config: the file, `defaults:`, every persona
    sections.py   one persona's blocks (schedule, filters, replies) parsed and checked
    node.py       Node: a YAML mapping that names its key path in every error
    settings.py   the frozen dataclasses (Config, PersonaSettings, Schedule, ...)
    registry.py   the publisher kinds' interface: what a kind brings (kinds register
                  themselves from bot.publishers)
    location.py   `store:`: a path or a postgresql:// URL, its password kept apart

Everything above imports the names below from `bot.config`. May import: `bot.core`.
"""

from bot.config.loader import (
    CONFIG_ENV,
    DEFAULT_CONFIG,
    DEFAULT_HOME,
    HOME_ENV,
    MAX_TOP_K,
    PERSONA_NAME,
    STORE_FILE,
    load_config,
    merge_defaults,
    parse_config,
    persona_keys,
    with_overrides,
)
from bot.config.node import LITERAL_TOKEN_HINT, Node
from bot.config.sections import env_value, secret_from_env
from bot.config.settings import (
    DEFAULT_PUBLISHER,
    Config,
    Filters,
    LoggingSettings,
    OnLink,
    PersonaSettings,
    Ranking,
    Replies,
    Schedule,
    Secret,
    Vocabulary,
)

__all__ = [
    "CONFIG_ENV",
    "DEFAULT_CONFIG",
    "DEFAULT_HOME",
    "DEFAULT_PUBLISHER",
    "HOME_ENV",
    "LITERAL_TOKEN_HINT",
    "MAX_TOP_K",
    "PERSONA_NAME",
    "STORE_FILE",
    "Config",
    "Filters",
    "LoggingSettings",
    "Node",
    "OnLink",
    "PersonaSettings",
    "Ranking",
    "Replies",
    "Schedule",
    "Secret",
    "Vocabulary",
    "env_value",
    "load_config",
    "merge_defaults",
    "parse_config",
    "persona_keys",
    "secret_from_env",
    "with_overrides",
]
