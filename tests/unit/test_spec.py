"""Environment files: every rule gives one clear line naming the key; the shipped files load."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from nornos_infra import spec as specmod
from nornos_infra.errors import SpecError, UserError
from nornos_infra.spec import EnvSpec

ENVIRONMENTS = Path(__file__).resolve().parents[2] / "environments"
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGpdS0EDjkyN4OiDC3rZXBe8hnIqg8S5EFTGfoBfuoeJ test@nornos"
SHIPPED = ("dev", "staging", "production")


def shipped_raw(env: str) -> dict[str, Any]:
    """A shipped environment file as data, with the key inline (the key file need not exist)."""
    raw: dict[str, Any] = yaml.safe_load((ENVIRONMENTS / f"{env}.yaml").read_text())
    raw["ssh_keys"] = [{"name": k["name"], "public_key": KEY} for k in raw["ssh_keys"]]
    return raw


def load_raw(raw: Any, tmp_path: Path, stem: str | None = None) -> EnvSpec:
    stem = stem or (raw.get("name") if isinstance(raw, dict) and isinstance(raw.get("name"), str) else "dev")
    path = tmp_path / f"{stem}.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return specmod.load(path)


def load_shipped(env: str, tmp_path: Path) -> EnvSpec:
    """A tmp copy of environments/<env>.yaml with public_key instead of public_key_file."""
    return load_raw(shipped_raw(env), tmp_path, env)


def problems_of(tmp_path: Path, mutate: Callable[[dict[str, Any]], Any], base: str = "dev",
                stem: str | None = None) -> list[str]:
    raw = copy.deepcopy(shipped_raw(base))
    mutate(raw)
    try:
        load_raw(raw, tmp_path, stem)
    except SpecError as exc:
        return exc.problems
    return []


@pytest.mark.parametrize("env", SHIPPED)
def test_shipped_environments_load(env: str, tmp_path: Path) -> None:
    spec = load_shipped(env, tmp_path)
    assert spec.name == env
    assert spec.patient_data and spec.location == "fsn1"
    assert all(loc in specmod.EU_LOCATIONS for loc in spec.all_locations)


@pytest.mark.parametrize("env", SHIPPED)
def test_shipped_environments_use_current_types(env: str) -> None:
    """No pool still names the retired CX11..CX51 generation."""
    raw = yaml.safe_load((ENVIRONMENTS / f"{env}.yaml").read_text())
    assert {p["server_type"] for p in raw["pools"].values()} <= {"cx23", "cx33", "cx43", "cx53"}


def test_shipped_files_never_point_at_localcloud() -> None:
    """localcloud's key and address come from its overrides file, not from the committed files."""
    for env in SHIPPED:
        text = (ENVIRONMENTS / f"{env}.yaml").read_text()
        assert ".localcloud" not in text and "198.51.100.1" not in text, env
        spec = EnvSpec.model_validate(yaml.safe_load(text))
        key, = spec.ssh_keys
        assert (key.public_key_env, key.public_key_file) == ("SSH_PUBLIC_KEY", "~/.ssh/id_ed25519.pub")
        assert specmod.placeholder_cidrs(spec) == ["203.0.113.0/24"], "a documentation range until a team edits it"


def test_admin_key_from_env_var_then_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key = specmod.SSHKeySpec(name="admin", public_key_env="SSH_PUBLIC_KEY", public_key_file="k.pub")
    monkeypatch.delenv("SSH_PUBLIC_KEY", raising=False)
    with pytest.raises(UserError) as exc:
        key.resolve(tmp_path)
    message = str(exc.value)
    assert message.startswith("ssh_keys.admin: $SSH_PUBLIC_KEY is not set and cannot read ") and "\n" not in message
    assert "export SSH_PUBLIC_KEY=" in message and "ssh-keygen -t ed25519" in message
    (tmp_path / "k.pub").write_text(KEY + "\n")
    assert key.resolve(tmp_path) == KEY
    other = KEY.replace("test@nornos", "ci@nornos")
    monkeypatch.setenv("SSH_PUBLIC_KEY", other + "\n")
    assert key.resolve(tmp_path) == other, "the CI secret wins over the file"
    monkeypatch.setenv("SSH_PUBLIC_KEY", "  ")
    assert key.resolve(tmp_path) == KEY, "an empty variable counts as unset"


def test_default_key_file_is_in_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / ".ssh").mkdir()
    (tmp_path / ".ssh" / "id_ed25519.pub").write_text(KEY + "\n")
    assert specmod.SSHKeySpec(name="admin").resolve(tmp_path / "environments") == KEY


def test_a_pasted_private_key_is_refused_and_never_echoed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----"
    monkeypatch.setenv("SSH_PUBLIC_KEY", secret)
    with pytest.raises(UserError) as exc:
        specmod.SSHKeySpec(name="admin", public_key_env="SSH_PUBLIC_KEY").resolve(tmp_path)
    assert str(exc.value) == ("ssh_keys.admin: $SSH_PUBLIC_KEY is a PRIVATE key, not an SSH public key: never paste "
                              "it; give its .pub half (one line such as 'ssh-ed25519 AAAA... you@host', the .pub "
                              "file ssh-keygen wrote)")
    for bad in ("ssh-ed25519", "ssh-ed25519 not-base64!", "ssh-dss AAAAB3NzaC1kc3MAAACBAP"):
        with pytest.raises(UserError, match="is not an SSH public key"):
            specmod.SSHKeySpec(name="admin", public_key=bad).resolve(tmp_path)


def test_overrides_merge_mappings_and_replace_lists(tmp_path: Path) -> None:
    path = tmp_path / "dev.yaml"
    path.write_text(yaml.safe_dump(shipped_raw("dev")))
    spec = specmod.load(path, {"admin_cidrs": ["198.51.100.1/32"], "sops": {"dir": "/x"},
                               "backups": {"s3_bucket": "nornos-dev-backups"}})
    assert [str(c) for c in spec.admin_cidrs] == ["198.51.100.1/32"]
    assert spec.sops.dir == "/x" and spec.sops.age_key_file is None
    assert spec.backups.s3_bucket == "nornos-dev-backups"
    assert spec.backups.s3_endpoint == "https://fsn1.your-objectstorage.com", "kept from the env file"
    with pytest.raises(SpecError) as exc:
        specmod.load(path, {"admin_cidrs": ["0.0.0.0/0"]}, "o.yaml")
    assert exc.value.source == f"{path} with o.yaml"


def test_placeholders_are_documentation_ranges(tmp_path: Path) -> None:
    raw = shipped_raw("dev")
    raw["admin_cidrs"] = ["198.51.100.1/32", "10.8.0.0/16", "2001:db8:1::/48", "2a01:4f8::/32"]
    assert specmod.placeholder_cidrs(load_raw(raw, tmp_path)) == ["198.51.100.1/32", "2001:db8:1::/48"]


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(raw: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = raw
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        if isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value
    return mutate


def _drop(key: str) -> Callable[[dict[str, Any]], None]:
    return lambda raw: raw.pop(key)


CASES: list[tuple[str, Callable[[dict[str, Any]], Any], str]] = [
    # unknown keys, with the keys that are allowed at that place
    ("unknown top-level key", _set("locaton", "fsn1"), "locaton: unknown key (check its spelling); known keys "
     "here: admin_cidrs, backups, fallback_locations, image, k3s, load_balancer, location,"),
    ("unknown pool key", _set("pools.workers.size", 3), "pools.workers.size: unknown key (check its spelling); "
     "known keys here: count, image, role, server_type, taints, volume_gb"),
    ("unknown ssh key key", _set("ssh_keys.0.comment", "x"), "ssh_keys.0.comment: unknown key (check its "
     "spelling); known keys here: name, private_key_file, public_key, public_key_env, public_key_file"),
    ("unknown backups key", _set("backups.bucket", "x"), "backups.bucket: unknown key (check its spelling); known "
     "keys here: lock_days, s3_bucket, s3_ca_file, s3_endpoint, s3_region"),
    ("unknown network key", _set("network.cidr", "10.0.0.0/16"), "network.cidr: unknown key (check its "
     "spelling); known keys here: ip_range, subnet, zone"),
    ("unknown load balancer key", _set("load_balancer.port", 80), "load_balancer.port: unknown key"),
    # wrong types and ranges
    ("count not a number", _set("pools.workers.count", "three"), "pools.workers.count: Input should be a valid "
     "integer"),
    ("negative count", _set("pools.workers.count", -1), "pools.workers.count: Input should be greater than or "
     "equal to 0"),
    ("count too large", _set("pools.workers.count", 51), "pools.workers.count: Input should be less than or equal "
     "to 50"),
    ("unknown role", _set("pools.workers.role", "db"), "pools.workers.role: Input should be 'k3s_server', "
     "'k3s_agent', 'postgres' or 'redis'"),
    ("patient_data not boolean", _set("patient_data", "maybe"), "patient_data: Input should be a valid boolean"),
    ("pools not a mapping", _set("pools", ["a"]), "pools: Input should be a valid dictionary"),
    ("unknown network zone", _set("network.zone", "eu-west"), "network.zone: Input should be 'eu-central'"),
    ("volume too small", _set("pools.postgres.volume_gb", 5), "pools.postgres.volume_gb: Input should be greater "
     "than or equal to 10"),
    ("service port out of range", _set("load_balancer.services", [80, 70000]), "load_balancer.services.1: Input "
     "should be less than or equal to 65535"),
    # CIDRs
    ("ip_range with host bits", _set("network.ip_range", "10.0.0.1/16"), "network.ip_range: '10.0.0.1/16' has "
     "host bits set; write the network address 10.0.0.0/16"),
    ("subnet with host bits", _set("network.subnet", "10.0.1.7/24"), "network.subnet: '10.0.1.7/24' has host bits "
     "set; write the network address 10.0.1.0/24"),
    ("ip_range not a CIDR", _set("network.ip_range", "banana"), "network.ip_range: 'banana' is not a network in "
     "CIDR notation such as 10.0.0.0/16"),
    ("admin CIDR with host bits", _set("admin_cidrs", ["198.51.100.1/24"]), "admin_cidrs: '198.51.100.1/24' has "
     "host bits set; write the network address 198.51.100.0/24"),
    ("subnet outside ip_range", _set("network.subnet", "10.9.1.0/24"), "network.subnet: 10.9.1.0/24 is not inside "
     "network.ip_range 10.0.0.0/16"),
    ("public ip_range", lambda r: r["network"].update(ip_range="8.8.0.0/16", subnet="8.8.1.0/24"),
     "network.ip_range: 8.8.0.0/16 is not a private (RFC 1918) range"),
    ("subnet too small", _set("network.subnet", "10.0.1.0/29"), "network.subnet: 10.0.1.0/29 holds 5 addresses, "
     "7 are needed"),
    # admin CIDRs
    ("admin CIDRs missing", _drop("admin_cidrs"), "admin_cidrs: required key is missing; list the networks allowed "
     "to reach SSH and the Kubernetes API"),
    ("admin CIDRs empty", _set("admin_cidrs", []), "admin_cidrs: must not be empty; list the networks allowed"),
    ("admin CIDR is the internet", _set("admin_cidrs", ["0.0.0.0/0"]), "admin_cidrs: 0.0.0.0/0 opens SSH and the "
     "Kubernetes API to the whole internet"),
    ("ssh keys missing", _drop("ssh_keys"), "ssh_keys: required key is missing; list at least one key"),
    ("pools missing", _drop("pools"), "pools: required key is missing; define the pools"),
    # control planes and counts
    ("two control planes", _set("pools.control-plane.count", 2), "pools: 2 control planes; use 1 or an odd number "
     "(etcd needs a majority)"),
    ("four control planes", _set("pools.control-plane.count", 4), "pools: 4 control planes; use 1 or an odd number"),
    ("no control plane", _set("pools.control-plane.count", 0), "pools: no k3s_server pool with count >= 1"),
    ("two postgres servers", _set("pools.postgres.count", 2), "pools: at most one postgres server"),
    ("two redis pools", _set("pools.cache", {"role": "redis", "server_type": "cx23", "count": 1}),
     "pools: at most one redis server"),
    ("postgres without volume", lambda r: r["pools"]["postgres"].pop("volume_gb"), "pools.postgres.volume_gb: the "
     "PostgreSQL server needs a data volume size in GB"),
    ("volume on redis", _set("pools.redis.volume_gb", 20), "pools.redis.volume_gb: only the postgres pool has a "
     "volume"),
    # data residency
    ("patient data outside the EU", _set("location", "ash"), "location: ash is outside the EU; an environment "
     "holding patient data may only use fsn1, nbg1, hel1 (GDPR data residency)"),
    ("patient data fallback outside the EU", _set("fallback_locations", ["nbg1", "sin"]), "fallback_locations: sin "
     "is outside the EU"),
    ("fallback repeats location", _set("fallback_locations", ["fsn1"]), "fallback_locations: must not repeat "
     "location"),
    # names
    ("name with capitals", _set("name", "Dev"), "name: 'Dev' must be lowercase letters, digits and dashes"),
    ("name ending in a dash", _set("name", "dev-"), "name: 'dev-' must be lowercase letters, digits and dashes, at "
     "most 20, starting with a letter and ending with a letter or digit"),
    ("name too long", _set("name", "a" * 21), f"name: {'a' * 21!r} must be lowercase letters, digits and "
     "dashes, at most 20"),
    ("pool name with underscore", lambda r: r["pools"].__setitem__("big_workers", r["pools"].pop("workers")),
     "pools.big_workers: pool names are lowercase letters, digits and dashes"),
    # ssh keys
    ("duplicate ssh key names", lambda r: r["ssh_keys"].append(dict(r["ssh_keys"][0])), "ssh_keys: names must be "
     "unique"),
    ("ssh key inline and from a file", _set("ssh_keys.0.public_key_file", "~/.ssh/id.pub"), "ssh_keys.0: give "
     "public_key alone, or public_key_env and/or public_key_file"),
    ("ssh key empty", _set("ssh_keys.0.public_key", " "), "ssh_keys.0.public_key: is empty; paste the key, or use "
     "public_key_env or public_key_file"),
    ("ssh key env name", lambda r: r["ssh_keys"].__setitem__(0, {"name": "admin", "public_key_env": "SSH KEY"}),
     "ssh_keys.0.public_key_env: 'SSH KEY' is not an environment variable name"),
    # backups
    ("bucket name", _set("backups", {"s3_endpoint": "https://x.example", "s3_bucket": "My_Bucket"}),
     "backups.s3_bucket: 'My_Bucket' is not a bucket name"),
    ("bucket without https endpoint", _set("backups", {"s3_endpoint": "http://x", "s3_bucket": "nornos-dev"}),
     "backups.s3_endpoint: give the object storage's https:// URL"),
    # load balancer
    ("kube API port as a service", _set("load_balancer.services", [80, 443, 6443]), "load_balancer.services: 6443 "
     "is the Kubernetes API; remove it and set load_balancer.kube_api: true"),
]


@pytest.mark.parametrize(("mutate", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_each_problem_gives_one_clear_line(tmp_path: Path, mutate: Callable[[dict[str, Any]], Any],
                                            expected: str) -> None:
    problems = problems_of(tmp_path, mutate)
    assert len(problems) == 1, problems
    assert problems[0].startswith(expected), problems[0]
    assert "\n" not in problems[0]


def test_name_must_match_file(tmp_path: Path) -> None:
    problems = problems_of(tmp_path, lambda r: None, stem="staging")
    assert problems == ["name: 'dev' must match the file name 'staging'"]


def test_every_pydantic_problem_is_listed(tmp_path: Path) -> None:
    """Several mistakes: one line each, so the file is fixed in one pass."""
    def mutate(raw: dict[str, Any]) -> None:
        raw["locaton"] = "fsn1"
        raw["pools"]["workers"]["count"] = "two"
        raw["network"]["ip_range"] = "10.0.0.1/16"
        del raw["admin_cidrs"]
    problems = problems_of(tmp_path, mutate)
    assert len(problems) == 4
    assert {p.split(":")[0] for p in problems} == {"locaton", "pools.workers.count", "network.ip_range",
                                                   "admin_cidrs"}


def test_every_rule_problem_is_listed(tmp_path: Path) -> None:
    def mutate(raw: dict[str, Any]) -> None:
        raw["pools"]["control-plane"]["count"] = 2
        raw["location"] = "sin"
        raw["admin_cidrs"] = ["0.0.0.0/0"]
    problems = problems_of(tmp_path, mutate)
    assert [p.split(":")[0] for p in problems] == ["pools", "admin_cidrs", "location"]


@pytest.mark.parametrize("count", [1, 3, 5])
def test_odd_control_plane_counts_are_fine(tmp_path: Path, count: int) -> None:
    assert problems_of(tmp_path, _set("pools.control-plane.count", count)) == []


def test_non_eu_location_is_allowed_without_patient_data(tmp_path: Path) -> None:
    """Without patient data the location is a catalogue question (catalogue.check), not a rule."""
    def mutate(raw: dict[str, Any]) -> None:
        raw.update(patient_data=False, location="ash", fallback_locations=[])
    assert problems_of(tmp_path, mutate) == []


def test_patient_data_defaults_to_true(tmp_path: Path) -> None:
    """Forgetting the flag must not switch the residency guard off."""
    def mutate(raw: dict[str, Any]) -> None:
        raw.pop("patient_data")
        raw["location"] = "hil"
        raw["fallback_locations"] = []
    assert problems_of(tmp_path, mutate) == ["location: hil is outside the EU; an environment holding patient "
                                             "data may only use fsn1, nbg1, hel1 (GDPR data residency)"]


def test_not_yaml(tmp_path: Path) -> None:
    path = tmp_path / "dev.yaml"
    path.write_text("name: dev\npools: [unclosed\n")
    with pytest.raises(SpecError) as exc:
        specmod.load(path)
    assert len(exc.value.problems) == 1
    assert exc.value.problems[0].startswith("not valid YAML at line")


def test_not_a_mapping(tmp_path: Path) -> None:
    path = tmp_path / "dev.yaml"
    path.write_text("- just\n- a list\n")
    with pytest.raises(SpecError) as exc:
        specmod.load(path)
    assert exc.value.problems == ["must be a YAML mapping of settings (name, location, pools, ...)"]


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SpecError) as exc:
        specmod.load(tmp_path / "qa.yaml")
    assert exc.value.problems == ["file not found; environments live in environments/<env>.yaml"]
    assert str(exc.value).startswith(str(tmp_path / "qa.yaml"))


def test_spec_is_frozen(tmp_path: Path) -> None:
    spec = load_shipped("dev", tmp_path)
    with pytest.raises(ValueError, match="frozen"):
        spec.name = "x"  # type: ignore[misc]


def test_derived_names(tmp_path: Path) -> None:
    spec = load_shipped("production", tmp_path)
    assert spec.server_name("workers", 3) == "nornos-production-workers-3"
    assert sorted(spec.pools_with_role("k3s_agent")) == ["agents", "workers"]
    assert spec.all_locations == ["fsn1", "nbg1"]


def test_more_servers_than_a_network_holds_is_refused() -> None:
    from nornos_infra.spec import EnvSpec, check_rules

    spec = EnvSpec.model_validate({
        "name": "big", "admin_cidrs": ["198.51.100.1/32"],
        "ssh_keys": [{"name": "a", "public_key": "ssh-ed25519 AAAA"}],
        "network": {"ip_range": "10.0.0.0/16", "subnet": "10.0.0.0/22"},
        "pools": {"cp": {"role": "k3s_server", "server_type": "cx23", "count": 3},
                  "workers": {"role": "k3s_agent", "server_type": "cx23", "count": 49},
                  "more": {"role": "k3s_agent", "server_type": "cx23", "count": 49}}})
    problems = check_rules(spec)
    assert any("at most 100" in p for p in problems), problems
