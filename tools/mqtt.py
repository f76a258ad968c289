"""`janua mqtt`: the mosquitto side (docs/mqtt.md).

    janua mqtt config --db DB --out DIR [--base-port N] [--host H] [--san NAME]... [--password-tenant NAME]
                      [--clientid-plugin PATH | --no-clientid-plugin]
        write the mosquitto 2.0 config directory (a mutual-TLS listener per tenant, the TLS dynamic-security
        listener on N with the password tenant's broker certificate) and record the broker in the registry;
        run `mosquitto -c DIR/mosquitto.conf`. The certificate listeners load the janua_clientid plugin
        (default: $JANUA_CLIENTID_PLUGIN, else .venv/lib/janua_clientid.so from `make`) so that a client id
        other than the certificate's CN is refused; without it the client id is overridden with the CN.
    janua mqtt ca --db DB --tenant NAME       print the tenant's CA certificate (PEM)

The tenant CA keys are sealed under the verifier's KEK: the same $JANUA_KEK / --kek-file / --dev as `janua serve`.
"""

import sys
import time

from tools.errors import CLIError


def _common(p):
    p.add_argument("--db", default="janua.db")
    p.add_argument("--kek-file", help="the verifier's key-encryption key (default: $JANUA_KEK)")
    p.add_argument("--old-kek-file", metavar="FILE", action="append", default=[],
                   help="an earlier KEK that still opens sealed values (repeatable; or $JANUA_KEK_OLD)")
    p.add_argument("--dev", action="store_true", help="use the dev KEK file beside the database")


def configure(parser):
    sub = parser.add_subparsers(dest="mqtt_command", metavar="ACTION")
    sub.required = True
    p = sub.add_parser("config", help="write the mosquitto config directory for every tenant")
    _common(p)
    p.add_argument("--out", required=True, help="directory to write (mosquitto.conf, tenants/, dynsec.json)")
    p.add_argument("--base-port", "--port", type=int, default=8883, dest="base_port",
                   help="the username/password listener; tenant TLS listeners take the next free ports")
    p.add_argument("--host", default="127.0.0.1", help="address the listeners bind")
    p.add_argument("--san", action="append", help="name or address in the broker certificates (repeatable; "
                                                   "default localhost and 127.0.0.1)")
    p.add_argument("--password-tenant", metavar="NAME",
                   help="the tenant whose devices use the TLS password listener (it shows that tenant's broker "
                        "certificate; default: the one chosen before, else the first tenant by name)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--clientid-plugin", metavar="PATH",
                   help="the janua_clientid mosquitto plugin (built from verifier/broker_plugin/janua_clientid.c) "
                        "to load on the certificate listeners: a client id other than the certificate CN is refused")
    g.add_argument("--no-clientid-plugin", action="store_true",
                   help="do not load it: a client id other than the certificate CN is overridden with the CN")
    p = sub.add_parser("ca", help="print a tenant's CA certificate (PEM)")
    _common(p)
    p.add_argument("--tenant", required=True)


def run(args):
    from verifier.mqtt import broker as mqtt_broker
    from verifier.mqtt import x509 as vx
    from verifier.config import Config, make_sealer
    from verifier.errors import VerifierError
    from verifier.storage import open_storage
    try:
        sealer = make_sealer(Config(db_path=args.db, kek_file=args.kek_file, dev=args.dev,
                                              old_kek_files=tuple(args.old_kek_file)))
        storage = open_storage(args.db)
    except VerifierError as e:
        raise CLIError(str(e), hint="pass the verifier's KEK: $JANUA_KEK, --kek-file or --dev") from e
    now = int(time.time())
    try:
        if args.mqtt_command == "ca":
            tenant = storage.get_tenant_by_name(args.tenant)
            if tenant is None:
                raise CLIError(f"no tenant named {args.tenant!r} in {args.db}")
            sys.stdout.write(vx.cert_pem(vx.TenantCA.load(storage, sealer, tenant, now).cert).decode())
            return 0
        if storage.count_tenants() == 0:
            raise CLIError(f"no tenants in {args.db}", hint="janua tenant create NAME --db " + args.db)
        hosts = tuple(args.san) if args.san else ("localhost", "127.0.0.1")
        try:
            plugin = mqtt_broker.clientid_plugin_path(False if args.no_clientid_plugin else args.clientid_plugin)
        except mqtt_broker.BrokerError as e:
            raise CLIError(str(e), hint="build it: make .venv/lib/janua_clientid.so (gcc, mosquitto-dev, "
                                        "libmosquitto-dev, libssl-dev)") from e
        try:
            out = mqtt_broker.write_config(storage, sealer, args.out, now, host=args.host, base_port=args.base_port,
                                           hosts=hosts, password_tenant=args.password_tenant,
                                           clientid_plugin=plugin or False)
        except VerifierError as e:
            raise CLIError(str(e), hint="is the KEK the one the verifier uses?") from e
        except OSError as e:
            raise CLIError(f"cannot write {args.out}: {e.strerror}") from e
    finally:
        storage.close()
    print(f"janua mqtt: wrote {args.out}/mosquitto.conf (TLS password listener {args.host}:{out['dynsec_port']} "
          f"for tenant {out['password_tenant']})", file=sys.stderr)
    if out["clientid_plugin"] is None:
        print("janua mqtt: warning: no janua_clientid plugin: the certificate listeners override a client id that is "
              "not the certificate CN instead of refusing it (make .venv/lib/janua_clientid.so, then "
              "--clientid-plugin)", file=sys.stderr)
    for name, port in out["tenants"].items():
        print(f"{name}\t{args.host}:{port}")
    return 0
