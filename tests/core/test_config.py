"""Configuration: TOML + environment, decoded into typed Structs; errors name the key path."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from guanxi.core.base.config import load_settings
from guanxi.core.base.errors import ConfigError


def test_defaults_without_a_file_use_sqlite_in_the_working_directory() -> None:
    core, sections, source = load_settings(environ={})
    assert core.database.url == "sqlite+aiosqlite:///guanxi.db"
    assert (sections, source) == ({}, "<defaults>")


def test_file_values_and_environment_overrides(tmp_path: Path) -> None:
    f = tmp_path / "g.toml"
    f.write_text(
        'tenant = "acme"\n[graphql]\nmax_depth = 8\n[plugins]\nenabled = ["loyalty"]\n[plugins.loyalty]\npoints_per_purchase = 3\n'
    )
    core, sections, _ = load_settings(
        f, environ={"GUANXI_DATABASE_URL": "postgresql+asyncpg://u@h/db", "GUANXI__GRAPHQL__MAX_PAGE_SIZE": "50"}
    )
    assert (core.tenant, core.graphql.max_depth, core.graphql.max_page_size) == ("acme", 8, 50)
    assert core.database.url == "postgresql+asyncpg://u@h/db"
    assert sections == {"loyalty": {"points_per_purchase": 3}}


@pytest.mark.parametrize(
    ("toml", "path", "reason"),
    [
        ('[graphql]\nmax_depth = "deep"\n', "$.graphql.max_depth", "Expected `int`, got `str`"),
        ("[server]\nport = 70000\n", "$.server.port", "Expected `int` <= 65535"),
        ('[database]\nurl = "guanxi.db"\n', "$.database.url", "Expected `str` matching regex"),
        ('[plugins]\nenabled = ["Bad-Name"]\n', "$.plugins.enabled[0]", "Expected `str` matching regex"),
        ('[server]\nlog_level = "loud"\n', "$.server.log_level", "Invalid enum value 'loud'"),
        ("[graphql]\ndefault_page_size = 500\n", "$.graphql", "default_page_size must not be larger than max_page_size"),
        ('[databse]\nurl = "x"\n', "$", "Object contains unknown field `databse`"),
    ],
)
def test_a_bad_value_fails_with_its_key_path_and_reason(tmp_path: Path, toml: str, path: str, reason: str) -> None:
    f = tmp_path / "g.toml"
    f.write_text(toml)
    with pytest.raises(ConfigError) as err:
        load_settings(f, environ={})
    assert f"`{path}`" in str(err.value) and reason in str(err.value)
    assert str(f) in str(err.value)


def test_an_explicit_config_file_that_does_not_exist_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(environ={"GUANXI_CONFIG": str(tmp_path / "missing.toml")})


def test_invalid_toml_is_reported_with_the_file_name(tmp_path: Path) -> None:
    f = tmp_path / "g.toml"
    f.write_text("[graphql\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(f, environ={})


@pytest.mark.parametrize(
    ("environ", "label", "path"),
    [
        ({"GUANXI__SERVER__PORT": "99999"}, "environment variable GUANXI__SERVER__PORT", "$.server.port"),
        ({"GUANXI__SERVER": "{port = 0}"}, "environment variable GUANXI__SERVER", "$.server.port"),
        ({"GUANXI_DATABASE_URL": "not a url"}, "environment variable GUANXI_DATABASE_URL", "$.database.url"),
        ({"GUANXI_PLUGINS": "Bad-Name"}, "environment variable GUANXI_PLUGINS", "$.plugins.enabled[0]"),
    ],
)
def test_a_bad_environment_value_names_the_variable_not_defaults(environ: dict[str, str], label: str, path: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(environ=environ)
    assert str(err.value).startswith(f"{label}: invalid config at `{path}`")
    assert "<defaults>" not in str(err.value)


def test_a_bad_file_value_beside_an_unrelated_environment_value_still_names_the_file(tmp_path: Path) -> None:
    f = tmp_path / "guanxi.toml"
    f.write_text("[server]\nport = 70000\n")
    with pytest.raises(ConfigError, match=f"^{re.escape(str(f))}: invalid config at `\\$.server.port`"):
        load_settings(f, environ={"GUANXI__SERVER__HOST": "127.0.0.1"})


def test_an_environment_value_that_is_not_toml_names_the_variable() -> None:
    with pytest.raises(ConfigError, match=r"^environment variable GUANXI__QUEUES__RATE_PER_S: "):
        load_settings(environ={"GUANXI__QUEUES__RATE_PER_S": "{wecom = "})
