"""A --server or --mirror whose port is no port: the running server's port spelled
``+PORT``, or one past 65535. The command refuses it as a usage error (exit 2) naming
the option, never with a traceback and exit 1 (which reads as "refused by the server")."""

from __future__ import annotations

import pytest

from tests.support.harness import ServerProcess, Trustkit


@pytest.mark.parametrize(
    ("flag", "port"), [("--server", "+{port}"), ("--server", "99999"), ("--mirror", "0x{port}")]
)
def test_a_port_that_is_no_port_is_a_usage_error_not_a_traceback(
    server: ServerProcess, host: Trustkit, gun: str, flag: str, port: str
) -> None:
    real = server.url.rsplit(":", 1)[1]
    url = f"http://127.0.0.1:{port.format(port=real)}"

    result = host.process(flag, url, "verify", f"{gun}:1.0", env={"TRUSTKIT_AGENT": "off"})

    assert result.code == 2, result.err
    assert "Traceback" not in result.err
    assert f"{flag} '{url}' has an invalid port" in result.err
