"""``escape-apartment broker …``: every secret of a game, and the broker's files.

The shipped broker configuration lives in ``config/mosquitto/`` (``mosquitto.conf`` and
``acl``); docker-compose.yml mounts those very files, and the tests run them. What is *not*
shipped are the secrets, which ``broker credentials`` generates for one game, all at once:

- one MQTT user per node, whose username is the node id (the ACL's ``%u`` patterns rely on
  it), one ``controller`` user, and one ``healthcheck`` user for the compose health check;
- the controller's own secrets: the game master's and the technician's passwords, the
  room screens' and the login cookies' signing secrets. This module does not name them:
  config/ sits below the controller (``tests/test_layering.py``), and those names belong to
  the controller's settings model (``controller/core/config.py``), which also makes their
  values (``new_secrets``). The controller's CLI hands that maker to :func:`register`, so
  ``controller.env`` holds whatever the controller reads, with no second list to keep equal;
- ``passwd``: the Mosquitto password file, in Mosquitto 2's own hash format, written by
  :func:`hash_password` so that ``mosquitto_passwd`` need not be installed;
- ``<user>.env``: ``ESCAPE_MQTT_USERNAME`` / ``ESCAPE_MQTT_PASSWORD`` for that user (and,
  in ``controller.env``, the controller's secrets), readable by systemd's
  ``EnvironmentFile=``, by compose's ``env_file:`` and by ``set -a; . file``.

Every file is written 0600 in a 0700 directory, and nothing is overwritten without
``--force``. ``broker install`` lays out the files a Mosquitto started as root reads once
it dropped to its own user (docs/deploy.md)::

    $ escape-apartment broker credentials --config config/apartment.yaml --out ~/escape-secrets
    $ sudo escape-apartment broker install --secrets ~/escape-secrets --dir /srv/escape/broker
    $ escape-apartment broker conf        # where the shipped mosquitto.conf and acl are

>>> encoded = hash_password("s3cret")
>>> encoded[:7], len(encoded)              # $7$<iterations>$<16-char salt>$<88-char hash>
('$7$101$', 112)
>>> verify_password("s3cret", encoded), verify_password("guess", encoded)
(True, False)
"""

from __future__ import annotations

import argparse
import base64
import binascii
import hashlib
import hmac
import os
import pwd
import secrets
import stat
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from config.loader import CONFIG_DIR, SHIPPED_GAME, GameConfigError, load_game
from protocol.contract import check_id

#: the shipped broker files; docker-compose.yml mounts these and the tests run them
MOSQUITTO_DIR = CONFIG_DIR / "mosquitto"
MOSQUITTO_CONF = MOSQUITTO_DIR / "mosquitto.conf"
MOSQUITTO_ACL = MOSQUITTO_DIR / "acl"

CONTROLLER_USER = "controller"
HEALTHCHECK_USER = "healthcheck"
#: usernames that have their own ACL section, so no node may be called that
RESERVED_USERS = frozenset({CONTROLLER_USER, HEALTHCHECK_USER})

#: name of the password file in the output directory (compose mounts it from there)
PASSWD_FILE = "passwd"  # noqa: S105 - a file name, not a password

#: Mosquitto 2's ``$7$`` hash: PBKDF2-HMAC-SHA512 with a 12-byte salt and a 64-byte key,
#: ``$7$<iterations>$<base64 salt>$<base64 hash>`` (standard base64, with padding).
#: 101 iterations is what ``mosquitto_passwd`` 2.0 writes; the passwords we generate carry
#: 192 random bits, so more stretching would only slow every connection down.
HASH_ID = "7"
DEFAULT_ITERATIONS = 101
SALT_BYTES = 12
HASH_BYTES = 64

#: secrets.token_urlsafe(24): 32 characters of [A-Za-z0-9_-], 192 bits, safe unquoted in
#: env files, shells and systemd
PASSWORD_BYTES = 24
#: a login password is typed on a tablet: 3 groups of 4 of these 31 characters (no 0/o,
#: 1/l/i), 59 bits, "k7pm-x3qa-9tfe"; login allows 5 wrong tries a minute per address
LOGIN_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"
LOGIN_GROUPS = 3
#: the Mosquitto user a broker started as root switches to (its `user` option's default)
BROKER_USER = "mosquitto"


class CredentialsError(ValueError):
    """Credentials cannot be generated or written as asked."""


# -- Mosquitto password hashes ------------------------------------------------------------
def hash_password(password: str, *, iterations: int = DEFAULT_ITERATIONS,
                  salt: bytes | None = None) -> str:
    """Hash *password* the way ``mosquitto_passwd`` 2.0 does (``$7$``, PBKDF2-SHA512).

    *salt* is for tests only; leave it out and a fresh random one is used.
    """
    if iterations < 1:
        msg = f"iterations must be at least 1, not {iterations}"
        raise ValueError(msg)
    if salt is None:
        salt = secrets.token_bytes(SALT_BYTES)
    key = hashlib.pbkdf2_hmac("sha512", password.encode("utf-8"), salt, iterations, HASH_BYTES)
    return (f"${HASH_ID}${iterations}${base64.b64encode(salt).decode('ascii')}"
            f"${base64.b64encode(key).decode('ascii')}")


def verify_password(password: str, encoded: str) -> bool:
    """True if *encoded* (a ``$7$`` hash, or a whole ``user:hash`` line) matches *password*."""
    encoded = encoded.strip().rpartition(":")[2]
    parts = encoded.split("$")
    # "$7$101$salt$hash".split("$") == ["", "7", "101", "salt", "hash"]
    if len(parts) != 5 or parts[0] or parts[1] != HASH_ID or not parts[2].isdigit():
        msg = f"not a Mosquitto $7$ hash: {encoded[:20]!r}…"
        raise ValueError(msg)
    try:
        salt = base64.b64decode(parts[3], validate=True)
        expected = base64.b64decode(parts[4], validate=True)
    except binascii.Error as exc:
        msg = f"bad base64 in Mosquitto hash: {exc}"
        raise ValueError(msg) from exc
    key = hashlib.pbkdf2_hmac("sha512", password.encode("utf-8"), salt, int(parts[2]),
                              len(expected))
    return hmac.compare_digest(key, expected)


def new_password() -> str:
    """A fresh random password (192 bits, URL-safe characters only)."""
    return secrets.token_urlsafe(PASSWORD_BYTES)


def new_login_password() -> str:
    """A fresh password a person types: ``xxxx-xxxx-xxxx``."""
    return "-".join("".join(secrets.choice(LOGIN_ALPHABET) for _ in range(4))
                    for _ in range(LOGIN_GROUPS))


# -- credential sets ----------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Credentials:
    """The users of one game's broker and their plain passwords (only ever in memory)."""

    apartment_id: str
    nodes: tuple[str, ...]
    #: user → plain password; kept out of repr() so a log line or a traceback cannot leak it
    passwords: Mapping[str, str] = field(repr=False)
    #: the controller's other secrets: environment variable → value
    controller_secrets: Mapping[str, str] = field(repr=False, default_factory=dict)

    @classmethod
    def generate(cls, *, apartment_id: str, nodes: Iterable[str],
                 controller_secrets: Mapping[str, str] | None = None) -> Credentials:
        """A fresh password for every node, the controller and the health check;
        *controller_secrets* (variable → value) go into ``controller.env`` besides."""
        node_ids = tuple(check_id(node, "node id") for node in nodes)
        clash = sorted(RESERVED_USERS.intersection(node_ids))
        if clash:
            msg = (f"node id(s) {', '.join(clash)} are reserved for broker users of their own; "
                   "rename the node(s) in the game file")
            raise CredentialsError(msg)
        if len(set(node_ids)) != len(node_ids):
            msg = f"duplicate node ids in {node_ids}"
            raise CredentialsError(msg)
        users = (*node_ids, CONTROLLER_USER, HEALTHCHECK_USER)
        return cls(apartment_id=check_id(apartment_id, "apartment id"), nodes=node_ids,
                   passwords={user: new_password() for user in users},
                   controller_secrets=dict(controller_secrets or {}))

    @property
    def users(self) -> tuple[str, ...]:
        return tuple(self.passwords)

    def passwd_text(self, *, iterations: int = DEFAULT_ITERATIONS) -> str:
        """The Mosquitto password file: one ``user:$7$…`` line per user."""
        return "".join(f"{user}:{hash_password(pw, iterations=iterations)}\n"
                       for user, pw in self.passwords.items())

    def env_text(self, user: str, *, broker: str | None = None) -> str:
        """The env file of *user*, for systemd ``EnvironmentFile=`` or compose ``env_file:``."""
        role = f"node {user!r}" if user in self.nodes else f"the {user}"
        lines = [
            f"# MQTT credentials of {role}, apartment {self.apartment_id!r}.",
            "# Generated by `escape-apartment broker credentials`; keep this file mode 0600.",
            f"ESCAPE_MQTT_USERNAME={user}",
            f"ESCAPE_MQTT_PASSWORD={self.passwords[user]}",
        ]
        if broker is not None and user in self.nodes:
            # the systemd unit passes --broker ${ESCAPE_BROKER}
            lines.append(f"ESCAPE_BROKER={broker}")
        if user == CONTROLLER_USER:
            lines.append("# The logins of the console and the signing secrets "
                         "(escape-apartment controller --help).")
            lines += [f"{name}={value}" for name, value in self.controller_secrets.items()]
        return "\n".join(lines) + "\n"


def credential_files(credentials: Credentials, *, broker: str | None = None,
                     iterations: int = DEFAULT_ITERATIONS) -> dict[str, str]:
    """File name → content of everything :func:`write_credentials` writes."""
    files = {PASSWD_FILE: credentials.passwd_text(iterations=iterations)}
    for user in credentials.users:
        files[f"{user}.env"] = credentials.env_text(user, broker=broker)
    return files


def write_credentials(credentials: Credentials, *, out: Path, force: bool = False,
                      broker: str | None = None,
                      iterations: int = DEFAULT_ITERATIONS) -> list[Path]:
    """Write the password file and the env files into *out*; return the paths written.

    *out* is created with mode 0700; an existing one must not be open to group or others.
    Without *force*, nothing is written if any of the files exists already (so a second
    run cannot leave half old, half new credentials). Each file is written under a
    temporary name with mode 0600 from the start, then renamed into place.
    """
    files = credential_files(credentials, broker=broker, iterations=iterations)
    _prepare_dir(out)
    targets = {name: out / name for name in files}
    existing = sorted(name for name, path in targets.items() if path.exists())
    if existing and not force:
        msg = (f"{out} already holds {', '.join(existing)}: not overwriting credentials "
               "that may be deployed (use --force to replace them all)")
        raise CredentialsError(msg)
    for name, content in files.items():
        _write_private(targets[name], content)
    return list(targets.values())


def _prepare_dir(out: Path) -> None:
    if out.exists():
        if not out.is_dir():
            msg = f"{out} exists and is not a directory"
            raise CredentialsError(msg)
        mode = out.stat().st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            msg = (f"{out} is open to group or others (mode {stat.filemode(mode)}): "
                   "chmod 700 it, or choose a new directory")
            raise CredentialsError(msg)
        return
    out.mkdir(parents=True, mode=0o700)
    out.chmod(0o700)  # mkdir's mode is filtered by the umask; say it exactly


def _write_private(path: Path, content: str) -> None:
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    # O_EXCL + mode 0600 at creation: the secret is never readable by others, not even
    # for the instant between open() and chmod().
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(content)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o600)  # the umask may only remove bits, but be explicit
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


# -- the broker's own files, for a Mosquitto started as root -------------------------------
#: the directives a rendered mosquitto.conf rewrites; each occurs exactly once in the shipped file
REWRITTEN = ("listener", "password_file", "acl_file", "persistence_location")


def render_mosquitto_conf(*, port: int, password_file: Path, acl_file: Path, persistence_dir: Path,
                          host: str | None = None, user: str | None = None,
                          source: Path = MOSQUITTO_CONF) -> str:
    """The shipped ``mosquitto.conf`` with only its listener, file paths and data directory
    rewritten (and ``user`` added when given).

    Lines are rewritten by directive, not by string search, and each rewritten directive
    must occur exactly once, so a change to the shipped file either keeps working here or
    fails loudly: a broker configured this way can never drift from what compose runs.
    Comments (the commented-out TLS listener too) are kept as they are.
    """
    replacements = {
        "listener": f"listener {port}" + (f" {host}" if host else ""),
        "password_file": f"password_file {password_file}",
        "acl_file": f"acl_file {acl_file}",
        "persistence_location": f"persistence_location {persistence_dir}/",
    }
    seen = dict.fromkeys(REWRITTEN, 0)
    out: list[str] = []
    for line in source.read_text(encoding="utf-8").splitlines():
        words = line.split()
        key = words[0] if words and not words[0].startswith("#") else None
        if key in replacements:
            seen[key] += 1
            out.append(replacements[key])
        else:
            out.append(line)
    wrong = {key: n for key, n in seen.items() if n != 1}
    if wrong:
        msg = (f"{source}: expected each of {', '.join(REWRITTEN)} exactly once, found "
               + ", ".join(f"{key} {n} time(s)" for key, n in wrong.items()))
        raise CredentialsError(msg)
    if user is not None:
        out += ["", "# Started as root, Mosquitto switches to this user before it reads the",
                "# password file, the ACL and its data: they belong to it.", f"user {user}"]
    return "\n".join(out) + "\n"


@dataclass(frozen=True, slots=True)
class BrokerFiles:
    """What :func:`install_broker` laid out."""

    conf: Path
    passwd: Path
    acl: Path
    data: Path
    #: the user Mosquitto runs as once started (None: whoever starts it, not root)
    user: str | None


def install_broker(*, secrets_dir: Path, dest: Path, port: int = 1883, host: str | None = None,
                   user: str | None = None) -> BrokerFiles:
    """Lay out a bare Mosquitto's files in *dest*: ``mosquitto.conf`` (the shipped one, see
    :func:`render_mosquitto_conf`), ``passwd`` (from *secrets_dir*), ``acl`` and ``data/``.

    Started as root, Mosquitto 2 switches to its ``user`` (``mosquitto`` by default) right
    after reading its config, *before* it opens the password file, the ACL and its data
    (the Debian package's service does just that). Run as root, this gives those files and
    *dest* to that user (mode 0600 / 0700), and checks it can reach *dest* at all: a
    ``passwd`` left in the 0700 secrets directory, or owned by root or by the container's
    uid 1883, is exactly what such a broker cannot open ("Unable to open pwfile"). Run as
    another user, the files are that user's, who must then start Mosquitto.
    """
    source = secrets_dir / PASSWD_FILE
    if not source.is_file():
        msg = f"{source} does not exist: run `escape-apartment broker credentials --out {secrets_dir}` first"
        raise CredentialsError(msg)
    owner = _broker_owner(user)
    dest.mkdir(parents=True, exist_ok=True)
    if owner is not None:
        _check_reachable(dest.resolve(), owner)
    data = dest / "data"
    data.mkdir(exist_ok=True)
    files = BrokerFiles(conf=dest / "mosquitto.conf", passwd=dest / PASSWD_FILE, acl=dest / "acl",
                        data=data, user=owner.pw_name if owner else None)
    _write_private(files.passwd, source.read_text(encoding="utf-8"))
    _write_private(files.acl, MOSQUITTO_ACL.read_text(encoding="utf-8"))
    conf = render_mosquitto_conf(port=port, host=host, password_file=files.passwd.resolve(),
                                 acl_file=files.acl.resolve(), persistence_dir=data.resolve(),
                                 user=files.user)
    _write_private(files.conf, conf)
    for path, mode in ((dest, 0o700), (data, 0o700), (files.passwd, 0o600), (files.acl, 0o600),
                       (files.conf, 0o644)):
        path.chmod(mode)
        if owner is not None and path != files.conf:   # root reads the config, before the switch
            os.chown(path, owner.pw_uid, owner.pw_gid)
    return files


def _broker_owner(user: str | None) -> pwd.struct_passwd | None:
    if os.geteuid() != 0:
        return None
    name = user or BROKER_USER
    try:
        return pwd.getpwnam(name)
    except KeyError:
        msg = (f"there is no user {name!r} for Mosquitto to switch to (the mosquitto package "
               "creates it); install it, or name another one with --user")
        raise CredentialsError(msg) from None


def _check_reachable(directory: Path, owner: pwd.struct_passwd) -> None:
    """Every directory above *directory* must let *owner* through (search permission)."""
    groups = set(os.getgrouplist(owner.pw_name, owner.pw_gid))
    for parent in directory.parents:
        st = parent.stat()
        if st.st_uid == owner.pw_uid:
            allowed = st.st_mode & stat.S_IXUSR
        elif st.st_gid in groups:
            allowed = st.st_mode & stat.S_IXGRP
        else:
            allowed = st.st_mode & stat.S_IXOTH
        if not allowed:
            msg = (f"{owner.pw_name} cannot reach {directory}: {parent} is mode "
                   f"{stat.filemode(st.st_mode)}; choose a --dir it can reach (e.g. under /srv), "
                   f"or `chmod o+x {parent}`")
            raise CredentialsError(msg)


# -- command line -------------------------------------------------------------------------
def register(subparsers: argparse._SubParsersAction, *,
             controller_secrets: Callable[[], Mapping[str, str]]) -> None:
    """Add ``broker credentials``, ``broker install`` and ``broker conf`` to the
    ``escape-apartment`` command; *controller_secrets* makes the controller's own secrets
    (variable → fresh value) that ``credentials`` writes into ``controller.env``."""
    parser = subparsers.add_parser("broker", help="production Mosquitto broker: credentials, config")
    sub = parser.add_subparsers(dest="broker_cmd", required=True)

    cred = sub.add_parser(
        "credentials",
        help="generate every secret of a game: MQTT users, logins, signing secrets",
        description="Generate every secret the controller and the nodes need: a random MQTT "
                    "password for every node of the game, the controller and the compose health "
                    "check, and the controller's game-master and technician passwords and "
                    "screen and session secrets. Writes Mosquitto's password file and one env "
                    "file per user (mode 0600, directory 0700); the game-master and technician "
                    "passwords are in controller.env.",
    )
    cred.add_argument("--config", type=Path, default=SHIPPED_GAME,
                      help="game file (default: the shipped one)")
    cred.add_argument("--out", type=Path, required=True,
                      help="directory to write into (created 0700; keep it out of git)")
    cred.add_argument("--broker", default=None, metavar="HOST[:PORT]",
                      help="also write ESCAPE_BROKER=HOST[:PORT] into the nodes' env files")
    cred.add_argument("--force", action="store_true", help="replace existing credential files")
    cred.set_defaults(func=cmd_credentials, controller_secrets=controller_secrets)

    install = sub.add_parser(
        "install",
        help="lay out a Mosquitto's files (config, passwd, acl, data) for the user it runs as",
        description="Write DIR/mosquitto.conf (the shipped one, with this port and these paths), "
                    "DIR/passwd, DIR/acl and DIR/data/. Run as root, they belong to the user "
                    "Mosquitto switches to once started as root (--user, default mosquitto), "
                    "so `mosquitto -c DIR/mosquitto.conf` can read them; run as another user, "
                    "they are that user's. Replaces the files of an earlier run; keeps data/.",
    )
    install.add_argument("--secrets", type=Path, required=True,
                         help="the directory `broker credentials` wrote (its passwd is copied)")
    install.add_argument("--dir", type=Path, required=True, dest="dest",
                         help="the broker's directory (created)")
    install.add_argument("--port", type=int, default=1883, help="the listener's port (default 1883)")
    install.add_argument("--host", default=None,
                         help="the listener's address (default: every interface)")
    install.add_argument("--user", default=None,
                         help=f"the user Mosquitto runs as (default {BROKER_USER}; only as root)")
    install.set_defaults(func=cmd_install)

    conf = sub.add_parser("conf", help="print the paths of the shipped mosquitto.conf and acl")
    conf.set_defaults(func=cmd_conf)


def cmd_credentials(args: argparse.Namespace) -> int:
    try:
        game = load_game(args.config)
    except GameConfigError as exc:
        print(f"{args.config}: the game file has errors:\n{exc}", file=sys.stderr)
        return 2
    if args.broker is not None:
        # same parser as the node will use, so a typo fails here and not on the Pi
        from protocol.mqtt import BrokerAddress

        try:
            BrokerAddress.parse(args.broker)
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    try:
        credentials = Credentials.generate(apartment_id=game.apartment.id,
                                           nodes=[node.id for node in game.nodes],
                                           controller_secrets=args.controller_secrets())
        written = write_credentials(credentials, out=args.out, force=args.force,
                                    broker=args.broker)
    except (CredentialsError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {len(written)} files (mode 0600) in {args.out}:")
    for path in written:
        print(f"  {path}")
    print("\nThe game master's and the technician's passwords (and the signing secrets) are in "
          f"{args.out / (CONTROLLER_USER + '.env')} ({', '.join(credentials.controller_secrets)}).\n"
          "Next steps (docs/deploy.md):\n"
          f"  docker: sudo chown 1883:1883 {args.out / PASSWD_FILE}   "
          "(the broker container runs as uid 1883)\n"
          f"          ESCAPE_SECRETS_DIR={args.out.resolve()} docker compose up -d\n"
          f"  no docker: sudo escape-apartment broker install --secrets {args.out} --dir DIR\n"
          "  each Pi: install <node>.env as /etc/escape-apartment/<node>.env, mode 0600")
    return 0


def cmd_install(args: argparse.Namespace) -> int:
    try:
        files = install_broker(secrets_dir=args.secrets, dest=args.dest, port=args.port,
                               host=args.host, user=args.user)
    except (CredentialsError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    owner = f"owned by {files.user}" if files.user else "owned by you: start Mosquitto as yourself"
    print(f"wrote {files.conf}, {files.passwd}, {files.acl} and {files.data}/ ({owner})\n"
          f"start the broker: mosquitto -c {files.conf}")
    return 0


def cmd_conf(_args: argparse.Namespace) -> int:
    for path in (MOSQUITTO_CONF, MOSQUITTO_ACL):
        print(path)
    return 0
