"""Agent binaries older than the protocol Overseer was checked against are refused, naming the setting."""

from __future__ import annotations

import pytest

from overseer.runtime.agent import AgentBinaryError, require_supported_version


@pytest.mark.parametrize(("kind", "version"), [("codex", "0.169.0"), ("codex", "0.170.2"), ("codex", "1.0.0-alpha"),
                                               ("claude_code", "2.1.197"), ("claude_code", "2.2.0"),
                                               ("codex", None), ("codex", "nightly")])
def test_supported_versions_pass(kind: str, version: str | None) -> None:
    require_supported_version(kind, version, binary="x", setting="S")  # type: ignore[arg-type]


@pytest.mark.parametrize(("kind", "version", "setting"), [("codex", "0.163.0", "OVERSEER_CODEX_BIN"),
                                                          ("claude_code", "2.1.100", "OVERSEER_CLAUDE_BIN")])
def test_older_versions_name_the_setting(kind: str, version: str, setting: str) -> None:
    with pytest.raises(AgentBinaryError) as err:
        require_supported_version(kind, version, binary="/opt/agent", setting=setting)  # type: ignore[arg-type]
    assert err.value.setting == setting and version in str(err.value) and setting in str(err.value)
