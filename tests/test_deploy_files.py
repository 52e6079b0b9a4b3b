"""The example configuration in deploy/: valid as shipped, valid with its examples uncommented,
and naming every setting (a new setting without an example line fails here)."""

from __future__ import annotations

import re
from pathlib import Path

from dispatcher.config import Settings, load_settings

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "deploy" / "dispatcher.toml"
# A setting, and an example line "# key = value" (a comment that is a setting, not prose).
ACTIVE = re.compile(r"^([a-z_]+) = (.+)$", re.MULTILINE)
COMMENTED = re.compile(r"^# ([a-z_]+) = (.+)$", re.MULTILINE)


def test_the_example_configuration_loads_as_shipped() -> None:
    settings = load_settings(environ={}, config_file=EXAMPLE)
    assert settings.data_dir == Path("/var/lib/dispatcher")
    assert settings.log_format == "json"
    # The rest are the defaults, as the file says.
    defaults = Settings(log_format="json", data_dir=Path("/var/lib/dispatcher"))
    assert settings == defaults


def test_the_example_configuration_names_every_setting() -> None:
    text = EXAMPLE.read_text()
    named = {key for key, _ in ACTIVE.findall(text) + COMMENTED.findall(text)}
    missing = sorted(set(Settings.model_fields) - named)
    assert not missing, f"deploy/dispatcher.toml has no line for {missing}"
    assert not named - set(Settings.model_fields), "a line names no setting"


def test_the_examples_in_comments_are_valid_too(tmp_path: Path) -> None:
    text = EXAMPLE.read_text()
    examples = dict(COMMENTED.findall(text))
    assert {"database_url", "admin_token", "publish_tokens"} <= set(examples)
    # Every example uncommented, in place of the active line for the same key.
    values = {**dict(ACTIVE.findall(text)), **examples}
    uncommented = tmp_path / "all.toml"
    uncommented.write_text("".join(f"{key} = {value}\n" for key, value in values.items()))
    settings = load_settings(environ={}, config_file=uncommented)
    assert settings.database_url and settings.database_url.startswith("postgresql://")
    assert settings.admin_token and len(settings.publish_tokens) == 2
