import dataclasses
import tomllib
from pathlib import Path

import pytest

from boshcm.config import Config, ConfigError, load_config
from quizbot.config import XmppAccountConfig, load_standalone
from quizbot.game import GameSettings

EXAMPLE = Path(__file__).parents[2] / "conf" / "boshcm.toml"


def test_defaults_need_no_file() -> None:
    config = load_config()
    assert config.server.domain == "localhost"
    assert config.c2s.listen == "127.0.0.1:5222"
    assert config.c2s.starttls == "required"


def test_example_file_documents_every_option_with_its_default() -> None:
    with open(EXAMPLE, "rb") as handle:
        example = tomllib.load(handle)
    defaults = load_config()
    assert "quizbot" in defaults.extensions  # the installed extension's section is documented like the others
    assert_documented(example, defaults, "")
    for name, section in defaults.extensions.items():
        assert_documented(example[name], section.settings, f"{name}.")  # type: ignore[arg-type]
    assert load_config(EXAMPLE) == defaults


def assert_documented(table: dict[str, object], defaults: object, prefix: str) -> None:
    """Every option of the dataclass `defaults` is in the TOML `table` with its default; tables nest."""
    for option in dataclasses.fields(defaults):  # type: ignore[arg-type]
        if option.name == "extensions" and isinstance(defaults, Config):
            continue  # the extensions' own sections, checked one by one
        key = f"{prefix}{option.name}"
        assert option.name in table, f"{key} missing from the example file"
        value = getattr(defaults, option.name)
        if dataclasses.is_dataclass(value):
            assert_documented(table[option.name], value, f"{key}.")  # type: ignore[arg-type]
        else:
            assert table[option.name] == value, key


def test_standalone_example_documents_every_option_and_refuses_unknown_keys(tmp_path: Path) -> None:
    standalone = EXAMPLE.parent / "quizbot.toml"
    with open(standalone, "rb") as handle:
        example = tomllib.load(handle)
    loaded = load_standalone(standalone)
    assert_documented(example, loaded, "")  # every option present (the account and rooms are examples)
    with pytest.raises(ConfigError, match=r"^quizbot\.game\.question_secs: unknown option"):
        load_standalone(standalone, {"quizbot.game.question_secs": 3})
    with pytest.raises(ConfigError, match=r"^xmpp\.jid"):
        load_standalone(None, {"xmpp.password_file": "x"})


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


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_nan_and_infinity_are_refused_for_float_options(tmp_path: Path, value: str) -> None:
    path = tmp_path / "boshcm.toml"
    path.write_text(f"[bosh]\nmax_wait_seconds = {value}\n[quizbot.game]\nquestion_seconds = 10\n")
    with pytest.raises(ConfigError, match=r"bosh\.max_wait_seconds: must be a finite number"):
        load_config(path)
    path.write_text(f"[quizbot.game]\nreveal_seconds = {value}\n")
    with pytest.raises(ConfigError, match="reveal_seconds: must be a finite number"):
        load_config(path)


def test_configuration_reference_mentions_every_option() -> None:
    reference = (EXAMPLE.parents[1] / "docs" / "configuration.md").read_text()
    config = load_config()
    sections = {field.name: getattr(config, field.name) for field in dataclasses.fields(Config)
                if field.name != "extensions"}
    sections.update({name: section.settings for name, section in config.extensions.items()})
    for name, defaults in sections.items():
        assert f"`[{name}]`" in reference
        for option in dataclasses.fields(defaults):
            assert f"`{option.name}`" in reference, f"{name}.{option.name} undocumented"
    for option in (*dataclasses.fields(GameSettings), *dataclasses.fields(XmppAccountConfig)):
        assert f"`{option.name}`" in reference, f"{option.name} undocumented"


def test_an_extension_owns_its_section_unknown_keys_named_and_absent_extensions_refused() -> None:
    assert load_config(None, {"quizbot.nick": "Quizmaster"}).extensions["quizbot"].settings.nick == "Quizmaster"
    with pytest.raises(ConfigError, match=r"^quizbot\.colour: unknown option"):
        load_config(None, {"quizbot.colour": "blue"})
    with pytest.raises(ConfigError, match=r"^quizbot\.game\.question_secs: unknown option"):
        load_config(None, {"quizbot.game.question_secs": 3})
    with pytest.raises(ConfigError, match=r"^quizbot\.language: must be de or en"):
        load_config(None, {"quizbot.language": "fr"})
    # Without the extension installed, its section is as unknown as any other.
    with pytest.raises(ConfigError, match=r"^quizbot: unknown option"):
        load_config(None, {"quizbot.nick": "Quizmaster"}, extensions=[])
    with pytest.raises(ConfigError, match=r"^extensions: unknown option"):
        load_config(None, {"extensions.quizbot": 1})


def test_check_config_validates_the_extension_section(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from boshcm.cli import main

    path = tmp_path / "boshcm.toml"
    path.write_text('[quizbot]\naccount = "quiz@elsewhere"\n')
    assert main(["check-config", "--config", str(path)]) == 2
    assert capsys.readouterr().err.strip() == ("boshcm: configuration error: quizbot.account: "
                                               "must be a local part like 'quiz'")
    path.write_text('[quizbot]\nenabled = false\nroom = "lobby"\n')
    assert main(["check-config", "--config", str(path)]) == 0


@pytest.mark.parametrize(("overrides", "message"), [
    ({"c2s.auth_account_free_failures": -1}, "c2s.auth_account_free_failures: must not be negative"),
    ({"stream_management.resume_seconds": -1}, "stream_management.resume_seconds: must not be negative "
                                                "(0: no resumption)"),
    ({"stream_management.ack_request_every": -1}, "stream_management.ack_request_every: must not be negative "
                                                  "(0: never ask)"),
    ({"cluster.drain_timeout_seconds": -1}, "cluster.drain_timeout_seconds: must not be negative"),
    ({"muc.lock_seconds": -1}, "muc.lock_seconds: must not be negative"),
    ({"muc.history_length": -1}, "muc.history_length: must not be negative"),
    ({"muc.max_rooms_per_account": -1}, "muc.max_rooms_per_account: must not be negative (0: no limit)"),
    ({"quizbot.game.get_ready_seconds": -1}, "quizbot.game.get_ready_seconds: must not be negative"),
    ({"c2s.stanza_rate_exempt": ["quiz", "a@b"]}, "c2s.stanza_rate_exempt[1]: must be a local part like 'quiz'"),
    ({"muc.room_quota_exempt": [""]}, "muc.room_quota_exempt[0]: must be a local part like 'quiz'"),
    ({"server.domain": "a@example.org"}, "server.domain: must be a bare domain; got 'a@example.org'"),
    ({"upload.domain": "example.org/up"}, "upload.domain: must be a bare domain; got 'example.org/up'"),
    ({"muc.domain": "rooms@example.org"}, "muc.domain: must be a bare domain; got 'rooms@example.org'"),
])
def test_negative_counts_bad_account_lists_and_domains_are_refused_in_one_wording(overrides: dict[str, object],
                                                                                    message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(None, overrides)
    assert str(caught.value) == message
