import dataclasses
import tomllib
from pathlib import Path

import pytest

from boshcm.config import Config, ConfigError, load_config

EXAMPLE = Path(__file__).parents[2] / "conf" / "boshcm.toml"


def test_defaults_need_no_file() -> None:
    config = load_config()
    assert config.server.domain == "localhost"
    assert config.c2s.listen == "127.0.0.1:5222"
    assert config.c2s.starttls == "required"


def test_example_file_documents_every_option_with_its_default() -> None:
    with open(EXAMPLE, "rb") as handle:
        example = tomllib.load(handle)
    defaults = Config()
    for section in dataclasses.fields(Config):
        documented = example[section.name]
        section_defaults = getattr(defaults, section.name)
        for option in dataclasses.fields(section_defaults):
            assert option.name in documented, f"{section.name}.{option.name} missing from conf/boshcm.toml"
            assert documented[option.name] == getattr(section_defaults, option.name), option.name
    assert load_config(EXAMPLE) == defaults


@pytest.mark.parametrize(("overrides", "named"), [
    ({"c2s.starttls": "sometimes"}, "c2s.starttls"),
    ({"c2s.listen": "5222"}, "c2s.listen"),
    ({"c2s.max_stanza_bytes": 0}, "c2s.max_stanza_bytes"),
    ({"c2s.max_depth": "64"}, "c2s.max_depth"),
    ({"c2s.anonymous": "yes"}, "c2s.anonymous"),
    ({"server.domain": "user@example.org"}, "server.domain"),
    ({"server.colour": "blue"}, "server.colour"),
    ({"nosuchsection.x": 1}, "nosuchsection"),
    ({"log.level": "loud"}, "log.level"),
    ({"c2s.tls_cert": "/etc/cert.pem"}, "c2s.tls_cert"),
])
def test_invalid_option_is_refused_naming_the_dotted_key(overrides: dict[str, object], named: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(None, overrides)
    assert str(caught.value).startswith(named)


def test_command_line_overrides_the_file(tmp_path: Path) -> None:
    path = tmp_path / "boshcm.toml"
    path.write_text('[server]\ndomain = "example.org"\n[c2s]\nlisten = "0.0.0.0:5223"\n')
    config = load_config(path, {"c2s.listen": "127.0.0.1:15222"})
    assert config.server.domain == "example.org"
    assert config.c2s.listen == "127.0.0.1:15222"


def test_unreadable_or_invalid_toml_is_a_config_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[server\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad)
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.toml")


def test_integers_are_accepted_for_float_options() -> None:
    assert load_config(None, {"c2s.auth_window_seconds": 30}).c2s.auth_window_seconds == 30.0


def test_configuration_reference_mentions_every_option() -> None:
    reference = (EXAMPLE.parents[1] / "docs" / "configuration.md").read_text()
    for section in dataclasses.fields(Config):
        assert f"`[{section.name}]`" in reference
        for option in dataclasses.fields(getattr(Config(), section.name)):
            assert f"`{option.name}`" in reference, f"{section.name}.{option.name} undocumented"
