"""``invoke plan --env E``: what a deploy would change, in all three layers, changing nothing.

- cloud: ``provision.py <env> --dry-run`` (the plan and its monthly cost);
- hosts: ``pyinfra --dry --diff`` over deploys/all.py (the operations that would change, with
  the file diffs), every secret value of the env masked;
- manifests: a server-side dry run against the cluster (the diff of ``invoke manifests
  --dry-run``), or one line saying why it cannot run (no inventory, no kubeconfig, no cluster).

Each layer runs the command a person would type for it, so a plan shows what they would see.
The exit status: 1 when a layer failed, else 2 when any layer has changes pending, else 0.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from nornos_infra import inventory, kubeconfig, paths
from nornos_infra import secrets as env_secrets
from nornos_infra.cloud.model import Op
from nornos_infra.errors import UserError

PENDING, CLEAN, NOT_RUN, FAILED = "changes pending", "no changes", "not run", "failed"
EXIT_OK, EXIT_FAILED, EXIT_PENDING = 0, 1, 2
MASK = "********"
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
# a pyinfra line that only says which deploy file it reads: not part of what would change
PYINFRA_NOISE = re.compile(r"^\s*(Loading: |\[[^]]+\] Ready: |--> )")


@dataclass
class Layer:
    name: str  # cloud, hosts or manifests
    state: str  # PENDING, CLEAN, NOT_RUN or FAILED
    summary: str  # one line
    command: str  # what ran, as a person would type it
    body: str = ""  # the layer's own output, secrets masked
    data: dict[str, Any] = field(default_factory=dict)  # for --json


@dataclass
class EnvPlan:
    env: str
    layers: list[Layer]

    @property
    def exit_status(self) -> int:
        if any(layer.state == FAILED for layer in self.layers):
            return EXIT_FAILED
        return EXIT_PENDING if any(layer.state == PENDING for layer in self.layers) else EXIT_OK

    def summary(self) -> str:
        return f"plan {self.env}: " + "; ".join(f"{layer.name} {layer.summary}" for layer in self.layers)

    def text(self) -> str:
        sections = [f"== {layer.name}: {layer.command}\n{layer.body.rstrip() or layer.summary}"
                    for layer in self.layers]
        return "\n\n".join([*sections, self.summary()]) + "\n"

    def as_dict(self) -> dict[str, Any]:
        return {"env": self.env, "exit_status": self.exit_status,
                "pending": [layer.name for layer in self.layers if layer.state == PENDING],
                "layers": {layer.name: {k: v for k, v in asdict(layer).items() if k != "name"}
                           for layer in self.layers}}


def mask(text: str, values: Mapping[str, str]) -> str:
    """Every secret value of the env replaced by MASK (longest first, so no part of one is left)."""
    for value in sorted((v for v in values.values() if len(v) >= 8), key=len, reverse=True):
        text = text.replace(value, MASK)
    return text


def _run(command: list[str], env: Mapping[str, str], timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, env={**os.environ, **env}, timeout=timeout,
                          cwd=paths.project_dir(), stdin=subprocess.DEVNULL)


def cloud(env: str, as_json: bool, extra_env: Mapping[str, str]) -> Layer:
    # --refresh-inventory: the hosts layer then plans the servers as they are, also on a fresh checkout (CI)
    command = [sys.executable, str(paths.project_dir() / "provision.py"), env, "--dry-run", "--detailed-exitcode",
               "--refresh-inventory"]
    command += ["--json"] if as_json else []
    shown = f"provision.py {env} --dry-run"
    done = _run(command, extra_env, timeout=600)
    output = ANSI.sub("", done.stdout)
    if done.returncode not in (0, 2):
        reason = ANSI.sub("", done.stderr).strip().splitlines()[-1:] or [f"exit {done.returncode}"]
        return Layer("cloud", FAILED, f"failed: {reason[0]}", shown, output + ANSI.sub("", done.stderr))
    state = PENDING if done.returncode == 2 else CLEAN
    if as_json:
        data = json.loads(output)
        counts = {op: n for op, n in data.get("counts", {}).items() if n and op != Op.NOOP.value}
        summary = ", ".join(f"{n} to {op}" for op, n in counts.items()) or "no changes"
        return Layer("cloud", state, summary, shown, data={"plan": data})
    line = next((ln for ln in output.splitlines() if ln.startswith("Plan:")), "")
    summary = line.removeprefix("Plan:").strip().rstrip(".") or state
    return Layer("cloud", state, summary, shown, output)


def _changed_operations(plan: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """pyinfra's JSON plan: the operations that would change, and those that would run only
    because of them (``_if``: a restart after a changed file)."""
    sure = [op for op in plan if op.get("hosts_with_change")]
    maybe = [op for op in plan if op.get("hosts_with_conditional_change") and not op.get("hosts_with_change")]
    return sure, maybe


def _diff_lines(log: str) -> str:
    """What pyinfra said about each change (``[host] Will modify ...`` and the diff below it),
    without its progress lines."""
    lines = [ANSI.sub("", line).rstrip() for line in log.splitlines()]
    start = next((i for i, line in enumerate(lines) if line.startswith("--> Preparing operation")), len(lines))
    end = next((i for i in range(start, len(lines)) if lines[i].startswith("--> Disconnecting")), len(lines))
    return "\n".join(line for line in lines[start + 1:end] if line.strip() and not PYINFRA_NOISE.match(line))


HOST_PROBLEM = re.compile(r"^\s*\[(?P<host>[^]]+)\] (?P<what>.*(?:[Ee]rror|[Cc]ould not|[Ff]ailed).*)$")


def _pyinfra_failure(log: str, status: int) -> tuple[str, str]:
    """One line and a short body for a pyinfra run that produced no plan: the hosts it could not
    reach or plan for and pyinfra's own error, without the SSH library's tracebacks."""
    lines = [ANSI.sub("", line).rstrip() for line in log.splitlines()]
    problems = [m for m in map(HOST_PROBLEM.match, lines) if m]
    final = [line.strip() for line in lines if line.startswith("--> pyinfra error")]
    body = "\n".join([*(m.group(0).strip() for m in problems), *final]) or "\n".join(lines[-40:])
    if problems:
        names = sorted({m.group("host") for m in problems})
        first = problems[0].group("what").strip()
        return (f"failed: {len(names)} host(s) could not be planned ({', '.join(names)}): {first}; are the servers "
                "running and reachable over SSH?", body)
    return f"failed: {(final or [f'pyinfra exit {status}'])[-1]}", body


def hosts(env: str, load_secrets: Callable[[str], Mapping[str, str]] = env_secrets.load, *,
          inventory_file: Path | None = None, deploy: Path | None = None) -> Layer:
    """``inventory_file`` and ``deploy`` default to the project's inventories/<env>.py and deploys/all.py."""
    inventory_file = inventory_file or paths.inventory_file(env)
    deploy = deploy or paths.project_dir() / "deploys" / "all.py"
    pyinfra = Path(sys.executable).with_name("pyinfra")
    shown = f"pyinfra --dry --diff inventories/{env}.py deploys/all.py"
    if not inventory_file.exists():
        return Layer("hosts", NOT_RUN, f"not run: no inventory yet (inventories/{env}.py is written by provision.py)",
                     shown)
    try:
        if not inventory.load(inventory_file).hosts():
            return Layer("hosts", NOT_RUN, "not run: no servers yet (the cloud plan creates them)", shown)
        values = load_secrets(env)
    except UserError as exc:
        return Layer("hosts", FAILED, f"failed: {exc}", shown)
    done = _run([str(pyinfra), "--dry", "--diff", "--json", str(inventory_file), str(deploy)], {}, timeout=1800)
    log = mask(done.stderr, values)
    try:
        plan = json.loads(done.stdout)["plan"]
    except (ValueError, KeyError, TypeError):
        summary, body = _pyinfra_failure(log, done.returncode)
        return Layer("hosts", FAILED, summary, shown, body)
    sure, maybe = _changed_operations(plan)
    changed_hosts = sorted({h for op in sure for h in op["hosts_with_change"]})
    listing = [f"  ~ {op['name']}: {', '.join(op['hosts_with_change'])}" for op in sure]
    listing += [f"  ? {op['name']}: {', '.join(op['hosts_with_conditional_change'])} (only if the changes above "
                "call for it)" for op in maybe]
    diff = _diff_lines(log)  # from the masked log
    body = "\n".join([*listing, diff]).strip("\n")
    if done.returncode != 0:
        return Layer("hosts", FAILED, f"failed: pyinfra exit {done.returncode}", shown, body)
    summary = (f"{len(sure)} operation(s) would change on {len(changed_hosts)} host(s): {', '.join(changed_hosts)}"
               if sure else "no changes")
    data = {"operations": [{"name": op["name"], "hosts": op["hosts_with_change"]} for op in sure],
            "conditional": [{"name": op["name"], "hosts": op["hosts_with_conditional_change"]} for op in maybe],
            "diff": diff}
    return Layer("hosts", PENDING if sure else CLEAN, summary, shown, body, data)


def _why_no_cluster(inventory_file: Path) -> str | None:
    """The inventory says k3s cannot be there: no internet access to download it and no binary given."""
    shared = inventory.load(inventory_file).shared
    settings = {**inventory.ROLE_DEFAULTS, **shared}
    if not settings["internet_access"] and not settings["k3s_binary_path"]:
        return ("no cluster: k3s is not installed on these hosts (no internet access and no k3s_binary_path), "
                "so there is nothing to compare the manifests with")
    return None


def manifests(env: str, load_secrets: Callable[[str], Mapping[str, str]] = env_secrets.load) -> Layer:
    from nornos_infra.kube.from_inventory import apply_from_inventory

    shown = f"invoke manifests --env {env} --dry-run (server-side dry run)"
    inventory_file = paths.inventory_file(env)
    if not inventory_file.exists():
        return Layer("manifests", NOT_RUN, "not run: no inventory yet, so no cluster", shown)
    reason = _why_no_cluster(inventory_file)
    if reason:
        return Layer("manifests", NOT_RUN, f"not run: {reason}", shown)
    config = kubeconfig.local_path(env)
    if not config.exists():
        return Layer("manifests", NOT_RUN, f"not run: no kubeconfig ({config} does not exist; fetch it with "
                                           f"`invoke kubeconfig --env {env}`)", shown)
    try:
        values = load_secrets(env)
        report = apply_from_inventory(env, dry_run=True)
    except UserError as exc:
        return Layer("manifests", NOT_RUN, f"not run: {exc}", shown)
    body = mask("\n".join([report.diff.rstrip(), *report.lines()]).strip(), values)
    data = {"report": report.as_dict(), "diff": mask(report.diff, values)}
    if not report.ok:
        return Layer("manifests", FAILED, "failed: " + "; ".join(report.errors)[:300], shown, body, data)
    summary = report.lines()[-1].split(": ", 1)[-1] if report.changed else "no changes"
    return Layer("manifests", PENDING if report.changed else CLEAN, summary, shown, body, data)


def plan(env: str, as_json: bool = False, extra_env: Mapping[str, str] | None = None) -> EnvPlan:
    """All three layers, in deploy order; nothing is changed anywhere."""
    return EnvPlan(env, [cloud(env, as_json, extra_env or {}), hosts(env), manifests(env)])
