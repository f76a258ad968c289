"""`janua device`: act on one registered device through the verifier's admin API.

A small table of actions, ACTIONS: name -> (configure, run, help). Today only `delete`: remove a device
that never authenticated (a mistaken provisioning), so that its serial can be used again
(DELETE /v1/devices/{id}, audited). Listing, showing, suspending are meant to join the table.
"""

from tools.api import add_actions, run_action
from tools.errors import CLIError


def _device_id(value):
    v = value.strip().lower()
    if len(v) != 16 or any(c not in "0123456789abcdef" for c in v):
        raise CLIError(f"a device id is 16 hex characters, not {value!r}")
    return v


def _configure_delete(p):
    p.add_argument("device_id", metavar="ID", help="the device's id (16 hex characters)")


def _run_delete(api, args):
    dev = _device_id(args.device_id)
    try:
        api.call("DELETE", f"/v1/devices/{dev}")
    except CLIError as e:
        if e.status == 409:
            raise CLIError(e.detail, hint="janua device delete removes only a device that never authenticated "
                                          "(its certificates are revoked and its MQTT password removed with it)"
                           ) from None
        if e.status == 404:
            raise CLIError(f"no device {dev} in this tenant") from None
        raise
    print(f"janua: deleted device {dev}; its serial can be provisioned again")
    return 0


ACTIONS = {
    "delete": (_configure_delete, _run_delete,
               "delete a device that never authenticated (frees its serial; audited)"),
}


def configure(parser):
    add_actions(parser, "device_command", ACTIONS, output=False)


def run(args):
    return run_action(args, "device_command", ACTIONS)
