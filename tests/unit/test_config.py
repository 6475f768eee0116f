from __future__ import annotations

from pathlib import Path

import pytest

from gateway.config import ConfigError, expand_env, load_settings, parse_settings
from tests.support import ROOT


def test_env_expansion_with_defaults_and_nested_values() -> None:
    doc = {"a": "${X}", "b": ["${Y:-fallback}", 3], "c": {"d": "pre-${X}-post"}}
    assert expand_env(doc, {"X": "1"}) == {"a": "1", "b": ["fallback", 3], "c": {"d": "pre-1-post"}}


def test_missing_env_var_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match="OPENAI_API_KEY"):
        expand_env({"k": "${OPENAI_API_KEY}"}, {})


def test_expanded_secret_cannot_inject_yaml(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("auth:\n  admin_key: ${K}\n")
    settings = load_settings(config, {"K": "x\nredis_url: evil"})
    assert settings.auth.admin_key == "x\nredis_url: evil" and settings.redis_url is None


def test_models_must_name_known_backends() -> None:
    with pytest.raises(ConfigError, match="unknown backend"):
        parse_settings({"backends": [{"name": "a", "urls": ["http://x/v1"]}],
                        "models": [{"name": "m", "targets": [{"backend": "b"}]}]}, {})


def test_unknown_fields_and_bad_urls_are_rejected() -> None:
    with pytest.raises(ConfigError, match="serverr"):
        parse_settings({"serverr": {}}, {})
    with pytest.raises(ConfigError, match="http"):
        parse_settings({"backends": [{"name": "a", "urls": ["ftp://x"]}]}, {})


def test_environment_fills_redis_and_secrets() -> None:
    settings = load_settings(None, {"REDIS_URL": "redis://r:6379/0", "TOLLGATE_ADMIN_KEY": "adm", "TOLLGATE_KEY_SECRET": "s"})
    assert (settings.redis_url, settings.auth.admin_key, settings.auth.key_hash_secret) == ("redis://r:6379/0", "adm", "s")


def test_example_config_in_docs_is_valid() -> None:
    example = ROOT / "docs" / "tollgate.example.yaml"
    settings = load_settings(example, {"OPENAI_API_KEY": "sk-test", "TOLLGATE_KEY_SECRET": "s"})
    assert settings.models and settings.backends
