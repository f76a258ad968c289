"""End to end on the virtual board (tools/vboard: the MicroPython unix port on a pty), a `janua serve --dev`
subprocess and the real CLI: a board provisioned with transport udp authenticates at boot; `janua policy set`
forbids binauth_udp for that device; the board's next boot prints the refusal (the authenticated NOT_ACTIVE of
docs/policies.md 3); removing the policy lets the following boot in again. The maintenance window on the board, with
the verifier's clock injected, is tests/policy/test_window_vboard.py."""

import pytest

from tools.boards import vboard_wifi_args
from tools.demo import Verifier, _janua, reset_and_read

pytestmark = pytest.mark.e2e


def test_a_policy_that_forbids_udp_refuses_the_board_at_its_next_boot(tmp_path):
    from tools.vboard import VirtualBoard
    v = Verifier(tmp_path)
    try:
        with VirtualBoard("esp32", tmp_path / "flash") as vb:
            _janua("flash", "--port", vb.port, "--board", "esp32")
            out = _janua("provision", "--serial", "POL-1", "--port", vb.port, "--server", v.url, "--token-file",
                         str(v.token_file), "--udp-port", str(v.udp_port), "--transport", "udp",
                         *vboard_wifi_args("esp32")).stdout
            device_id = out.split("provisioned device ")[1].split()[0]
            line = reset_and_read(vb.port, timeout=60)
            assert line.startswith(f"janua: authenticated device={device_id} via udp"), line
            auth = ["--server", v.url, "--token-file", str(v.token_file)]
            _janua("policy", "set", "device", device_id, "--set", "auth.protocols=binauth_http,dtls,token", *auth)
            line = reset_and_read(vb.port, timeout=60)
            assert line == "janua: auth failed: not_active", line
            rows = v.api("GET", f"/v1/audit?device_id={device_id}&limit=20")["entries"]
            assert any(r["result"] == "NOT_ACTIVE" and r["reason"] == "policy: protocol binauth_udp not allowed"
                       for r in rows), rows
            _janua("policy", "delete", "device", device_id, *auth)
            line = reset_and_read(vb.port, timeout=60)
            assert line.startswith(f"janua: authenticated device={device_id} via udp"), line
    finally:
        v.stop()
