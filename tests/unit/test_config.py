"""gateway.toml: what it renders loads back, and names, types and values that parse but cannot
work are refused at load, naming their key."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from gateway import config as config_module

FLOAT_KEYS = [(section.name, item.name)
              for section in dataclasses.fields(config_module.Config) if section.name != "base_dir"
              for item in dataclasses.fields(section.default_factory())
              if item.type == "float"]


def load(tmp_path: Path, text: str) -> config_module.Config:
    path = tmp_path / "gateway.toml"
    path.write_text(text)
    return config_module.load(path)


def refusal(tmp_path: Path, text: str) -> str:
    with pytest.raises(ValueError) as refused:
        load(tmp_path, text)
    return str(refused.value)


@pytest.mark.parametrize(("section", "key"), FLOAT_KEYS)
@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_every_number_must_be_finite(tmp_path, section, key, value):
    assert f"[{section}] {key} must be a finite number, got {float(value)!r}" in refusal(
        tmp_path, f"[{section}]\n{key} = {value}\n")


def test_the_float_keys_are_all_found():
    assert ("server", "grace_seconds") in FLOAT_KEYS
    assert ("limits", "refusal_summary_seconds") in FLOAT_KEYS and len(FLOAT_KEYS) >= 7


def test_a_nan_in_a_config_built_in_code_is_refused_too():
    config = config_module.Config().replace(limits={"requests_per_second": float("nan")},
                                            server={"grace_seconds": float("nan")})
    found = "; ".join(config_module.problems(config))
    assert "[limits] requests_per_second must be positive, got nan" in found
    assert "[server] grace_seconds must be 0 to" in found


@pytest.mark.parametrize(("value", "accepted"), [
    (0.0, True), (config_module.LONGEST_TIMER, True), (-1, False),
    (config_module.LONGEST_TIMER + 1, False), (1e300, False)])
def test_grace_seconds_is_bounded_by_the_longest_timer(tmp_path, value, accepted):
    text = f"[server]\ngrace_seconds = {value!r}\n"
    if accepted:
        assert load(tmp_path, text).server.grace_seconds == value
    else:
        assert (f"[server] grace_seconds must be 0 to {config_module.LONGEST_TIMER} seconds"
                in refusal(tmp_path, text))


@pytest.mark.parametrize("listen", ["127.0.0.1:0", "127.0.0.1:65535", "localhost:8443",
                                    "[::1]:8443", "0.0.0.0:443", "unix:/run/govshare.sock",
                                    "unix-abstract:govshare"])
def test_listen_accepts_a_host_and_a_port(tmp_path, listen):
    assert load(tmp_path, f'[server]\nlisten = "{listen}"\n').server.listen == listen


@pytest.mark.parametrize("listen", ["127.0.0.1:99999", "127.0.0.1:65536", ":8443", ":abc",
                                    "127.0.0.1:", "127.0.0.1", "127.0.0.1:-1", "127.0.0.1:８",
                                    "127.0.0.1:80 ", "unix:"])
def test_listen_refuses_a_missing_host_or_a_port_out_of_range(tmp_path, listen):
    assert ("[server] listen must be host:port with a host and a port from 0 to 65535"
            in refusal(tmp_path, f'[server]\nlisten = "{listen}"\n'))


def test_a_toml_syntax_error_names_the_file(tmp_path):
    message = refusal(tmp_path, "[server\nlisten = 1\n")
    assert message.startswith(f"{tmp_path / 'gateway.toml'} is not valid TOML: ")


def test_config_round_trips_and_resolves_paths(tmp_path):
    original = config_module.Config().replace(server={"listen": "127.0.0.1:9999"},
                                              limits={"burst": 7})
    path = tmp_path / "gateway.toml"
    path.write_text(config_module.render(original))
    loaded = config_module.load(path)
    assert loaded.server.listen == "127.0.0.1:9999"
    assert loaded.limits.burst == 7
    assert loaded.path(loaded.storage.database) == tmp_path / "govshare.db"
    assert loaded.path(Path("/abs/x")) == Path("/abs/x")


@pytest.mark.parametrize("text", ["[serverr]\nlisten='x'\n", "[server]\nlisen='x'\n"])
def test_config_rejects_unknown_names(tmp_path, text):
    path = tmp_path / "gateway.toml"
    path.write_text(text)
    with pytest.raises(ValueError, match="unknown"):
        config_module.load(path)


@pytest.mark.parametrize(("text", "problem"), [
    ('[limits]\nmax_chunk_bytes = "1MiB"\n', "[limits] max_chunk_bytes must be an integer"),
    ("[limits]\nmax_chunk_bytes = 2097152\n",
     "[limits] max_message_bytes must be at least [limits] max_chunk_bytes"),
    ("[limits]\nmax_chunk_bytes = 8388608\nmax_message_bytes = 9000000\n",
     "[limits] max_chunk_bytes must be at most"),
    ("[exchange]\nclock_skew_seconds = 0\n", "[exchange] clock_skew_seconds must be positive"),
    ("[exchange]\ndecision_working_days = -1\n",
     "[exchange] decision_working_days must be positive"),
    ("[exchange]\nmax_grant_days = 0\n", "[exchange] max_grant_days must be positive"),
    ("[network]\nrelay_idle_seconds = 0\n", "[network] relay_idle_seconds must be positive"),
    ("[server]\nmax_workers = true\n", "[server] max_workers must be an integer"),
    ("[server]\nmax_workers = 1\n", "[server] max_workers must be at least 2"),
    ("[exchange]\ndecision_working_days = 3000000\n",
     "[exchange] decision_working_days must be at most 366"),
    ("[exchange]\nmax_grant_days = 10000000\n", "[exchange] max_grant_days must be at most"),
    ("[limits]\nmax_message_bytes = 8388608\n", "[limits] max_message_bytes must be at most"),
    ("[server]\nmax_workers = 8\n[limits]\nmax_streams = 8\n",
     "[limits] max_streams must be 0 (the default) or below [server] max_workers"),
    ('[storage]\nsynchronous = "SOMETIMES"\n', "[storage] synchronous must be one of"),
    ("[storage]\ndatabase = 5\n", "[storage] database must be a path string"),
    ("limits = 5\n", "[limits] must be a table"),
])
def test_config_refuses_wrong_types_and_inconsistent_sizes(tmp_path, text, problem):
    path = tmp_path / "gateway.toml"
    path.write_text(text)
    with pytest.raises(ValueError) as refused:
        config_module.load(path)
    assert str(refused.value).startswith(f"{path}: ")
    assert problem in str(refused.value)


def test_config_stream_cap_defaults_below_the_thread_pool(tmp_path):
    path = tmp_path / "gateway.toml"
    path.write_text("[server]\nmax_workers = 8\n[limits]\nrequests_per_second = 5\n")
    loaded = config_module.load(path)
    assert loaded.max_streams == 6
    assert loaded.limits.requests_per_second == 5.0
    assert config_module.Config().max_streams == 48
