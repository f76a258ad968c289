"""Signed OTA: release keys, releases, rollouts, the device check/report routes and downloads (docs/ota.md)."""
