"""Constants the attestation device tests share (importable: conftest puts this folder on sys.path)."""

import json
from pathlib import Path


ROOT = Path(__file__).resolve().parents[2]
VECTORS = json.loads((ROOT / "docs" / "vectors" / "attest.json").read_text())
K_ATTEST = bytes.fromhex(VECTORS["k_attest"])
CFG = {"device_id": VECTORS["device_id"], "master_secret": VECTORS["master_secret"],
       "server": {"host": "127.0.0.1", "http_port": 1}, "transport": "http"}


