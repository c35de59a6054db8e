"""The ways a person applies the manifests: ``python -m nornos_infra.kube <env>`` (secrets on stdin or
from a file, addresses as options, a kubeconfig) and ``invoke manifests`` (everything read from the
inventory, the SOPS file and the fetched kubeconfig), each against the fake Kubernetes API through a
real kubeconfig file, as the kubernetes client loads it. What is asserted is what a person sees:
the exit status, the report printed (lines or JSON), the diff of a dry run, and the requests the
cluster received."""

from __future__ import annotations

import base64
import functools
import io
import json
import re
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from nornos_infra import secrets as env_secrets
from nornos_infra.errors import UserError
from nornos_infra.kube import from_inventory, generated
from nornos_infra.kube.__main__ import main
from nornos_infra.kube.cluster import Cluster
from tests.unit.fake_kube import FakeKube

VALUES = {key: f"s3cr3t-{key}" for key in generated.required_keys()}
HOSTS = ["--postgres-host", "10.0.1.5", "--redis-host", "10.0.1.6"]


@pytest.fixture
def kube() -> Iterator[FakeKube]:
    with FakeKube() as fake:
        yield fake


def kubeconfig(path: Path, servers: dict[str, str], current: str) -> Path:
    """A kubeconfig with one context per server (named like its cluster), ``current`` selected."""
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": current,
        "clusters": [{"name": name, "cluster": {"server": url}} for name, url in servers.items()],
        "users": [{"name": "admin", "user": {"token": "kube-token"}}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": "admin"}} for name in servers],
    }))
    return path


def default_kubeconfig(monkeypatch: pytest.MonkeyPatch, path: Path) -> None:
    """$KUBECONFIG as the kubernetes client sees it (it reads the variable once, when imported)."""
    from kubernetes.config import kube_config

    monkeypatch.setenv("KUBECONFIG", str(path))
    monkeypatch.setattr(kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", str(path))


def dead_url() -> str:
    """An address where nothing listens (a port just freed)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


def secrets_file(tmp_path: Path, values: dict[str, str | None] | None = None) -> Path:
    path = tmp_path / "dev.yaml"
    path.write_text(yaml.safe_dump(values if values is not None else VALUES))
    return path


def applied(kube: FakeKube) -> list[str]:
    return [r.path.rsplit("/", 1)[-1] for r in kube.state.requests if r.method == "PATCH"]


def stored_secret(kube: FakeKube, name: str, key: str, namespace: str = "nornos") -> str:
    return base64.b64decode(kube.state.objects[("", "secrets", namespace, name)]["data"][key]).decode()


# --- python -m nornos_infra.kube ---------------------------------------------------------------------------

def test_cli_applies_with_secrets_from_a_file_and_prints_the_report(
        kube: FakeKube, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = kubeconfig(tmp_path / "kubeconfig", {"fake": kube.url}, "fake")
    status = main(["dev", "--kubeconfig", str(config), "--secrets", str(secrets_file(tmp_path)), *HOSTS])
    out = capsys.readouterr().out
    assert status == 0, out
    assert "Namespace nornos: created" in out.splitlines()
    summary = out.splitlines()[-1]
    assert summary.startswith("dev: ") and " created, 0 configured, 0 unchanged, 0 pruned; rollouts " in summary
    assert not summary.endswith("FAILED")
    assert "--- live/" not in out  # a real apply prints no diff
    assert "patient-app-db" in applied(kube) and not [r for r in kube.state.requests if r.param("dryRun")]
    # the addresses given as options are the ones the apps are told
    assert "@10.0.1.5:5432/" in stored_secret(kube, "patient-app-db", "database-url")
    assert "@10.0.1.6:6379/" in stored_secret(kube, "patient-app-redis", "redis-url")
    assert stored_secret(kube, "hcloud", "token", "kube-system") == VALUES["hcloud_token"]


def test_cli_reads_secrets_from_stdin_and_prints_json(
        kube: FakeKube, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    default_kubeconfig(monkeypatch, kubeconfig(tmp_path / "kubeconfig", {"fake": kube.url}, "fake"))
    # what `sops -d` prints: a YAML mapping; keys with no value are left out, numbers become text
    monkeypatch.setattr("sys.stdin", io.StringIO(yaml.safe_dump({**VALUES, "unused": None, "redis_password": 1234})))
    assert main(["dev", "--secrets", "-", "--json", *HOSTS]) == 0
    out = capsys.readouterr().out
    assert out.startswith('{\n  "env": "dev",\n  "dry_run": false,\n')  # indented for people too
    report = json.loads(out)
    assert report["env"] == "dev" and report["ok"] is True and report["changed"] is True
    assert report["dry_run"] is False and report["errors"] == []
    assert {"object": "Namespace nornos", "action": "created"} in report["actions"]
    assert stored_secret(kube, "patient-app-redis", "redis-url").startswith("redis://")
    assert ":1234@10.0.1.6:6379/" in stored_secret(kube, "patient-app-redis", "redis-url")


def test_cli_dry_run_prints_the_masked_diff_and_changes_nothing(
        kube: FakeKube, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = kubeconfig(tmp_path / "kubeconfig", {"fake": kube.url}, "fake")
    assert main(["dev", "--dry-run", "--kubeconfig", str(config), "--secrets", str(secrets_file(tmp_path)),
                 *HOSTS]) == 0
    out = capsys.readouterr().out
    assert "+++ merged/core.Namespace._.nornos" in out
    assert "Namespace nornos: would be created" in out.splitlines()
    assert " would be created, 0 would be configured, 0 unchanged, 0 would be pruned" in out.splitlines()[-1]
    assert VALUES["hcloud_token"] not in out and "token: '*** (after)'" in out
    writes = kube.writes()
    assert writes and all(r.param("dryRun") == "All" for r in writes)
    assert {k[3] for k in kube.state.objects} == {"default", "kube-system"}


def test_cli_timeout_option_bounds_the_rollout_wait(
        kube: FakeKube, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    kube.state.rollout = "stuck"
    config = kubeconfig(tmp_path / "kubeconfig", {"fake": kube.url}, "fake")
    status = main(["dev", "--timeout", "0.01", "--kubeconfig", str(config), "--secrets", str(secrets_file(tmp_path)),
                   *HOSTS])
    out = capsys.readouterr().out
    assert status == 1
    # one look, one poll interval (2 s), a second look: then the 0.01 s are long past
    assert re.search(r"^rollout Deployment.apps nornos/patient-app: timeout after \d s: "
                     r"not rolled out within 0\.01 s: 0 of 1 updated replicas are available$", out, re.M), out
    assert out.splitlines()[-1].endswith("; FAILED")


def test_cli_refusals_are_one_line_and_send_nothing(
        kube: FakeKube, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    config = str(kubeconfig(tmp_path / "kubeconfig", {"fake": kube.url}, "fake"))
    assert main(["dev", "--kubeconfig", config, *HOSTS]) == 1
    err = capsys.readouterr().err
    assert err == ("error: applying needs the decrypted secrets: pipe `sops -d secrets/<env>.sops.yaml` into "
                   "--secrets - (they are never read from a plain file on disk by default)\n")

    not_a_mapping = tmp_path / "list.yaml"
    not_a_mapping.write_text("- hcloud_token\n- k3s_token\n")
    assert main(["dev", "--kubeconfig", config, "--secrets", str(not_a_mapping), *HOSTS]) == 1
    assert capsys.readouterr().err == "error: --secrets: expected a mapping of names to values\n"

    # a key given without a value is missing, and named (never its neighbours' values)
    values: dict[str, str | None] = {**VALUES, "hcloud_token": None}
    assert main(["dev", "--kubeconfig", config, "--secrets", str(secrets_file(tmp_path, values)), *HOSTS]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: secrets/dev.sops.yaml lacks hcloud_token;") and "s3cr3t" not in err

    for missing in (["--postgres-host", "10.0.1.5"], ["--redis-host", "10.0.1.6"]):
        assert main(["dev", "--kubeconfig", config, "--secrets", str(secrets_file(tmp_path)), *missing]) == 1
        assert capsys.readouterr().err == ("error: --postgres-host and --redis-host are needed (the private IPs in "
                                           "inventories/<env>.py)\n")
    assert not kube.state.requests


def test_cli_render_only_prints_valid_yaml_without_touching_a_cluster(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["dev", "--render-only", "--kubeconfig", "/nonexistent"]) == 0
    docs = [d for d in yaml.safe_load_all(capsys.readouterr().out) if d]
    kinds = {d["kind"] for d in docs}
    assert {"Namespace", "Deployment", "NetworkPolicy"} <= kinds and "Secret" not in kinds
    assert next(d for d in docs if d["kind"] == "Namespace")["apiVersion"] == "v1"  # in the order rendered
    assert list(docs[0])[:2] == ["apiVersion", "kind"]  # kustomize's key order, not sorted


# --- Cluster.connect ---------------------------------------------------------------------------------------

def test_connect_uses_the_named_context_and_says_what_is_wrong(kube: FakeKube, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    config = kubeconfig(tmp_path / "kubeconfig", {"down": dead_url(), "fake": kube.url}, "down")
    cluster = Cluster.connect(config, context="fake")
    try:
        assert cluster.get({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "kube-system"}})
    finally:
        cluster.close()
    assert any(r.path == "/api/v1/namespaces/kube-system" for r in kube.state.requests)

    with pytest.raises(UserError) as err:
        Cluster.connect(str(config))  # the current context: nothing listens there
    assert str(err.value).startswith("cannot reach the Kubernetes API at http://127.0.0.1:")
    assert "\n" not in str(err.value)

    with pytest.raises(UserError) as err:
        Cluster.connect(tmp_path / "missing.yaml")
    assert str(err.value).startswith(f"cannot load kubeconfig {tmp_path / 'missing.yaml'}: ")
    assert str(err.value).endswith("; fetch it with `invoke kubeconfig` or pass --kubeconfig")

    default_kubeconfig(monkeypatch, tmp_path / "also-missing.yaml")
    with pytest.raises(UserError, match=r"^cannot load kubeconfig \(default\): "):
        Cluster.connect(None)

    with pytest.raises(UserError, match=r"^cannot load kubeconfig .*: .*nope"):
        Cluster.connect(config, context="nope")


# --- invoke manifests (from_inventory) --------------------------------------------------------------------

INVENTORY = """
_common = {'env': 'dev'}
k3s_servers = ([('nornos-dev-control-plane-1', {'private_ip': '10.0.1.1'})], dict(_common))
postgres = ([('nornos-dev-postgres-2', {'private_ip': '10.0.1.9'}),
             ('nornos-dev-postgres-1', {'private_ip': '10.0.1.3'})], dict(_common))
redis = ([('nornos-dev-redis-1', {'private_ip': '10.0.1.4'})], dict(_common))
"""


@pytest.fixture
def checkout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kube: FakeKube) -> Path:
    """A checkout after ``provision.py dev``, ``invoke kubeconfig`` and ``invoke secrets.init``."""
    (tmp_path / "inventories").mkdir()
    (tmp_path / "inventories" / "dev.py").write_text(INVENTORY)
    monkeypatch.setenv("NORNOS_PROJECT_DIR", str(tmp_path))
    monkeypatch.setenv("NORNOS_KUBECONFIG_DIR", str(tmp_path / ".kube"))
    (tmp_path / ".kube").mkdir()
    kubeconfig(tmp_path / ".kube" / "nornos-dev.yaml", {"nornos-dev": kube.url}, "nornos-dev")
    monkeypatch.setenv("SOPS_AGE_KEY_FILE", str(tmp_path / "age" / "keys.txt"))
    monkeypatch.setenv("NORNOS_SECRETS_DIR", str(tmp_path / "secrets"))
    env_secrets.init("dev", tmp_path / "secrets", values=dict(VALUES))
    return tmp_path


def test_invoke_manifests_applies_with_what_the_checkout_holds(kube: FakeKube, checkout: Path) -> None:
    preview = from_inventory.apply_from_inventory("dev", dry_run=True)
    assert preview.dry_run and preview.ok and preview.count("created") > 40
    assert not kube.state.objects.get(("", "namespaces", "", "nornos"))
    report = from_inventory.apply_from_inventory("dev", dry_run=False)
    assert report.ok and not report.dry_run, report.lines()
    # the first PostgreSQL host by name, the secret decrypted from the SOPS file
    url = stored_secret(kube, "patient-app-db", "database-url")
    assert f":{VALUES['db_password_patient_app']}@10.0.1.3:5432/" in url
    assert stored_secret(kube, "hcloud", "token", "kube-system") == VALUES["hcloud_token"]


def test_invoke_manifests_without_a_kubeconfig_says_how_to_fetch_it(kube: FakeKube, checkout: Path) -> None:
    (checkout / ".kube" / "nornos-dev.yaml").unlink()
    with pytest.raises(UserError) as err:
        from_inventory.apply_from_inventory("dev", dry_run=True)
    assert str(err.value) == (f"{checkout / '.kube' / 'nornos-dev.yaml'} does not exist; "
                              "fetch it with `invoke kubeconfig --env dev`")
    with pytest.raises(UserError, match=r"inventories/staging\.py does not exist; run `python provision\.py"):
        from_inventory.apply_from_inventory("staging", dry_run=True)
    assert not kube.state.requests


def test_cli_help_names_every_option_as_documented(capsys: pytest.CaptureFixture[str],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    with pytest.raises(SystemExit) as done:
        main(["--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert " ".join(out.split("\n\n")[0].split()) == (
        "usage: python -m nornos_infra.kube [-h] [--dry-run] [--render-only] [--kubeconfig KUBECONFIG]"
        " [--secrets FILE|-] [--postgres-host POSTGRES_HOST] [--redis-host REDIS_HOST] [--timeout TIMEOUT] [--json]"
        " {dev,staging,production}")
    # the module's examples, line by line as written
    for line in ("    python -m nornos_infra.kube dev --render-only            # print the rendered YAML (no Secrets)",
                 "    sops -d secrets/dev.sops.yaml | python -m nornos_infra.kube dev --secrets - \\",
                 "    ... same without --dry-run                                # apply, prune, wait for rollouts"):
        assert line in out.splitlines()
    flat = " ".join(out.split())
    for option, text in (("--dry-run", "print a diff (secret values masked); change nothing"),
                         ("--render-only", "render and validate; print the YAML"),
                         ("--kubeconfig KUBECONFIG", "kubeconfig file (default: $KUBECONFIG or ~/.kube/config)"),
                         ("--secrets FILE|-", "decrypted secret values as YAML ('-' for stdin)"),
                         ("--postgres-host POSTGRES_HOST", "PostgreSQL private address (inventory)"),
                         ("--redis-host REDIS_HOST", "Redis private address (inventory)"),
                         ("--timeout TIMEOUT", "seconds to wait for rollouts (default 600)"),
                         ("--json", "print the report as JSON")):
        assert f"{option} {text}" in flat, option


def test_cli_refuses_an_unknown_environment(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(["qa", "--render-only"])
    assert done.value.code == 2
    # (Python 3.12.8+ drops the quotes around the choices)
    assert re.search(r"argument env: invalid choice: 'qa' \(choose from '?dev'?, '?staging'?, '?production'?\)$",
                     capsys.readouterr().err, re.M)


def test_cli_waits_600_s_for_rollouts_by_default(
        kube: FakeKube, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    from nornos_infra.kube import __main__ as cli
    from nornos_infra.kube.apply import Timing

    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    # the CLI's Timing, on a clock that moves only when the apply step sleeps
    monkeypatch.setattr(cli, "Timing", functools.partial(Timing, sleep=sleep, clock=lambda: now[0]))
    kube.state.rollout = "stuck"
    config = kubeconfig(tmp_path / "kubeconfig", {"fake": kube.url}, "fake")
    assert main(["dev", "--kubeconfig", str(config), "--secrets", str(secrets_file(tmp_path)), *HOSTS]) == 1
    out = capsys.readouterr().out
    assert ("rollout Deployment.apps nornos/patient-app: timeout after 600 s: not rolled out within 600 s: "
            "0 of 1 updated replicas are available") in out.splitlines()
    assert now[0] == 600  # polled every 2 s until then
