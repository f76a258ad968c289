"""Binary auth (docs/protocol.md 3): the sans-IO core, group commit, the UDP endpoint, metrics, POST /v1/binauth
and the device-request check that other features' device routes use."""
