"""Settings: file, environment and flags, in that order, and clear errors for bad values."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from daemon.config import SCHEMA, ConfigError, load_config
from tests.integration.support import REPO, shoebox

CONFIG_FILE = REPO / "config" / "shoebox.toml"


def test_shipped_config_documents_every_setting_with_its_default() -> None:
    text = CONFIG_FILE.read_text()
    doc = tomllib.loads(text)
    for s in SCHEMA:
        section = doc.get(s.section, {}) if s.section else doc
        assert s.key in section, f"config/shoebox.toml does not document {s.name}"
        if s.type != "path":
            assert s.coerce(section[s.key], "test") == s.default, f"{s.name}: file and built-in default differ"
        # each key has a comment right above it explaining it
        assert re.search(rf"#[^\n]*\n(#[^\n]*\n)*{re.escape(s.key)} = ", text), f"{s.name} has no comment"
    config = load_config(file=CONFIG_FILE, env={})
    assert config["server.port"] == 8420


def test_precedence_default_file_env_flag(tmp_path: Path) -> None:
    cfg = tmp_path / "s.toml"
    cfg.write_text('library = "/srv/photos"\n[server]\nport = 9000\n[index]\nworkers = 3\n')
    config = load_config(file=cfg, env={"SHOEBOX_SERVER_PORT": "9100", "SHOEBOX_DATA": "/var/lib/sb"},
                         flags={"server.port": "9200"})
    assert config["server.port"] == 9200 and config.origins["server.port"] == "flag:--server-port"
    assert config.data == Path("/var/lib/sb") and config.origins["data"] == "env:SHOEBOX_DATA"
    assert config.library == Path("/srv/photos")
    assert config.workers == 3
    assert config["index.nice"] == 10 and config.origins["index.nice"] == "default"


@pytest.mark.parametrize("env,fragment", [
    ({"SHOEBOX_SERVER_PORT": "http"}, "server.port"),
    ({"SHOEBOX_SERVER_PORT": "70000"}, "too large"),
    ({"SHOEBOX_INDEX_WATCH": "maybe"}, "true or false"),
    ({"SHOEBOX_THUMBNAILS_FORMAT": "gif"}, "one of jpeg, webp"),
])
def test_bad_value_names_key_value_and_what_is_allowed(env: dict[str, str], fragment: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(env=env, search_default_files=False)
    message = str(err.value)
    assert fragment in message
    assert repr(next(iter(env.values()))) in message
    assert "SHOEBOX_" in message


def test_unknown_key_in_file_is_refused(tmp_path: Path) -> None:
    cfg = tmp_path / "s.toml"
    cfg.write_text("[server]\nprot = 80\n")
    with pytest.raises(ConfigError, match="unknown setting 'server.prot'"):
        load_config(file=cfg, env={})


@pytest.mark.slow
def test_command_line_refuses_bad_value_before_starting(tmp_path: Path) -> None:
    result = shoebox("index", "--library", str(tmp_path), "--data", str(tmp_path / "d"),
                     "--thumbnails-quality", "5", check=False)
    assert result.returncode == 2
    assert "thumbnails.quality" in result.stderr and "'5'" in result.stderr and ">= 30" in result.stderr
    assert not (tmp_path / "d").exists(), "nothing may be created when the configuration is bad"


@pytest.mark.slow
def test_every_setting_has_a_flag_and_env_name() -> None:
    help_text = shoebox("serve", "--help").stdout
    for s in SCHEMA:
        assert s.flag in help_text or s.name in ("library", "data", "index.workers")
        assert s.env.startswith("SHOEBOX_")
