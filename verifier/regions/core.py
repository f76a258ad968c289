"""Regions (docs/regions.md): a tenant's named sets of device-facing endpoints (auth, MQTT, CoAP, HTTPS, update),
and the board configuration a device gets for its region. Sans-IO: the checks of a region document (the same rules
as the Region schema of verifier/regions/openapi.py, plus the ones a schema cannot state), `board_config` (the one
function provisioning and claim answers build a board's endpoints with), and `configurer` (what the registry's
provisioning calls, through app[DEVICE_CONFIG]). It does not read the clock or talk to a board."""

import re

from verifier.errors import Conflict, ValidationError
from verifier.registry.model import REGION_NAME_PATTERN, as_int, is_region_name

MAX_REGIONS = 100            # per tenant
URL_MAX = 2048
HOST_MAX = 253
# A DNS name or an IPv4 address (no IPv6 literal: the boards' janua.json hosts are names or IPv4)
HOST_PATTERN = "^[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$"
_PORT = "(6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[1-9][0-9]{0,3})"
# https only, a host (no user:password@), an optional port 1-65535, then printable ASCII only
HTTPS_URL_PATTERN = f"^https://[A-Za-z0-9._~-]+(:{_PORT})?([/?#][!-~]*)?$"
_HOST = re.compile(HOST_PATTERN[:-1] + "\\Z")
_URL = re.compile(HTTPS_URL_PATTERN[:-1] + "\\Z")
AUTH_PORTS = ("udp_port", "http_port", "dtls_port")
FIELDS = ("auth", "mqtt", "coap", "https", "update", "default")


class UnknownRegion(Conflict):
    """A device names a region its tenant has not defined."""

    code = "unknown_region"


class PortClash(Conflict):
    """Two endpoints of a region would need the same host, port and transport."""

    code = "port_clash"


class RegionInUse(Conflict):
    """The region still has devices (metadata.region) and cannot be deleted."""

    code = "region_in_use"


class TooManyRegions(Conflict):
    """The tenant already has MAX_REGIONS regions."""

    code = "too_many_regions"


def _object(v, name, required, optional=()):
    if not isinstance(v, dict):
        raise ValidationError(f"{name} must be an object")
    unknown = set(v) - set(required) - set(optional)
    missing = [k for k in required if k not in v]
    if unknown or missing:
        raise ValidationError(f"{name} must have {', '.join(required)}"
                              + (f" (optional: {', '.join(optional)})" if optional else "")
                              + f"; {'unknown' if unknown else 'missing'}: {', '.join(sorted(unknown or missing))}")
    return v


def _host(v, name):
    if type(v) is not str or not _HOST.match(v):
        raise ValidationError(f"{name} must be a DNS name or IPv4 address (1 to {HOST_MAX} of A-Z a-z 0-9 . -)")
    return v


def _port(v, name):
    n = as_int(v)
    if n is None or not 1 <= n <= 65535:
        raise ValidationError(f"{name} must be an integer in [1, 65535]")
    return n


def _url(v, name):
    if type(v) is not str or len(v) > URL_MAX or not _URL.match(v):
        raise ValidationError(f"{name} must be an https:// URL of at most {URL_MAX} printable ASCII characters, "
                              "with a host and no user:password@")
    return v


def _endpoint(v, name):
    _object(v, name, ("host", "port"))
    return {"host": _host(v["host"], f"{name}.host"), "port": _port(v["port"], f"{name}.port")}


def check_region(name, doc):
    """The region `name` from a PUT /v1/regions/{name} body, normalised: {name, auth, [mqtt], [coap], [https],
    [update], default}. ValidationError (400) for what the Region schema refuses; PortClash (409) for two
    endpoints on the same host, port and transport (binary auth's UDP port and DTLS; HTTP and MQTT)."""
    if not is_region_name(name):
        raise ValidationError(f"a region name matches {REGION_NAME_PATTERN}")
    _object(doc, "the body", (), FIELDS)
    if "auth" not in doc:
        raise ValidationError("the body must have auth: {host, udp_port, http_port, dtls_port[, tls]}")
    a = _object(doc["auth"], "auth", ("host",) + AUTH_PORTS, ("tls",))
    auth = {"host": _host(a["host"], "auth.host"), **{p: _port(a[p], f"auth.{p}") for p in AUTH_PORTS}}
    if "tls" in a:
        if type(a["tls"]) is not bool:
            raise ValidationError("auth.tls must be true or false")
        auth["tls"] = a["tls"]
    out = {"name": name, "auth": auth}
    for k in ("mqtt", "coap"):
        if k in doc:
            out[k] = _endpoint(doc[k], k)
    for k in ("https", "update"):
        if k in doc:
            out[k] = _url(doc[k], k)
    default = doc.get("default", False)
    if type(default) is not bool:
        raise ValidationError("default must be true or false")
    out["default"] = default
    if auth["udp_port"] == auth["dtls_port"]:
        raise PortClash(f"auth.udp_port and auth.dtls_port are both {auth['udp_port']}: binary auth and DTLS "
                        "need a UDP port each")
    mqtt = out.get("mqtt")
    if mqtt is not None and (mqtt["host"].lower(), mqtt["port"]) == (auth["host"].lower(), auth["http_port"]):
        raise PortClash(f"mqtt and auth.http_port are both {mqtt['host']}:{mqtt['port']}: HTTP and MQTT need a "
                        "TCP port each")
    return out


def board_config(region, default_server=None):
    """The board configuration for `region` (a check_region document) in the shape of the claim answer's config
    (docs/claims.md, docs/regions.md): {"region": name, "server": {host, udp_port, http_port, dtls_port[, tls]}
    [, "mqtt": {host, port}][, "coap": {host, port}][, "update": url]}. Without a region (None): {"region": None,
    "server": default_server} (the verifier's own device-facing endpoint, which the caller knows)."""
    if region is None:
        if default_server is None:
            raise ValueError("board_config needs a region or a default server")
        return {"region": None, "server": dict(default_server)}
    auth = region["auth"]
    server = {k: auth[k] for k in ("host",) + AUTH_PORTS}
    if auth.get("tls"):
        server["tls"] = True
    cfg = {"region": region["name"], "server": server}
    for k in ("mqtt", "coap"):
        if k in region:
            cfg[k] = dict(region[k])
    if "update" in region:
        cfg["update"] = region["update"]
    return cfg


def region_for(regions, metadata):
    """The region document of a device with `metadata` among its tenant's `regions` (name -> document): the one
    metadata.region names (UnknownRegion if the tenant has none of that name), else the tenant's default region,
    else None."""
    name = (metadata or {}).get("region")
    if name is not None:
        region = regions.get(name)
        if region is None:
            raise UnknownRegion(f"metadata.region {name!r} is not one of this tenant's regions"
                                + (f" ({', '.join(sorted(regions))})" if regions else " (it has none)")
                                + ": define it first (PUT /v1/regions/{name}, `janua region set`)")
        return region
    return next((r for r in regions.values() if r["default"]), None)


def configurer(storage, tenant_id):
    """What the registry's provisioning calls per row (app[DEVICE_CONFIG]): fields -> board_config of the row's
    region, or None without a region and a default; UnknownRegion for a region the tenant lacks. The tenant's
    regions are read once, at the first row."""
    loaded = []

    def configure(fields):
        if not loaded:
            loaded.append({r["name"]: r for r in storage.list_regions(tenant_id)})
        region = region_for(loaded[0], fields.get("metadata"))
        return None if region is None else board_config(region)
    return configure


def config_for(storage, tenant_id, region_name, default_server):
    """The board configuration of a device of the tenant that names `region_name` (None: none): that region's
    (UnknownRegion if the tenant lacks it), else the tenant's default region's, else board_config(None,
    default_server). For a caller that always answers a config, as the claim answer does (docs/claims.md)."""
    regions = {r["name"]: r for r in storage.list_regions(tenant_id)}
    region = region_for(regions, {} if region_name is None else {"region": region_name})
    return board_config(region, default_server)
