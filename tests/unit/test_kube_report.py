"""What an apply reports (nornos_infra/kube/report.py), the names of objects (model.py) and how an
API error reads. Found by the mutation score (scripts/mutation_score.py): the apply tests printed
the report's lines only when failing, and nothing read the dict automation gets."""

from __future__ import annotations

import json

from nornos_infra.kube.apply import _api_error
from nornos_infra.kube.model import ObjRef, group_of, selector, stamp
from nornos_infra.kube.report import Report
from nornos_infra.kube.rollout import RolloutResult

WEB = ObjRef("apps", "Deployment", "nornos", "web")
NS = ObjRef("", "Namespace", "", "nornos")
CM = ObjRef("", "ConfigMap", "nornos", "settings")
OLD = ObjRef("", "Service", "nornos", "old")
SECRET = ObjRef("", "Secret", "nornos", "db")


def test_object_names() -> None:
    assert str(WEB) == "Deployment.apps nornos/web"
    assert str(NS) == "Namespace nornos"
    assert group_of("apps/v1") == "apps" and group_of("v1") == ""
    assert ObjRef.of({"apiVersion": "apps/v1", "kind": "Deployment",
                      "metadata": {"namespace": "nornos", "name": "web"}}) == WEB
    assert ObjRef.of({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "nornos"}}) == NS
    assert ObjRef.of({}) == ObjRef("", "", "", "")
    assert selector("dev") == "app.kubernetes.io/managed-by=nornos-infra,nornos.io/env=dev"


def test_stamp_labels_metadata_only() -> None:
    objs = [{"kind": "ConfigMap"}, {"kind": "Deployment", "metadata": {"labels": None, "name": "web"},
                                    "spec": {"selector": {"matchLabels": {"app": "web"}}}}]
    stamp(objs, "prod")
    wanted = {"app.kubernetes.io/managed-by": "nornos-infra", "nornos.io/env": "prod"}
    assert objs[0]["metadata"] == {"labels": wanted}
    assert objs[1]["metadata"] == {"labels": wanted, "name": "web"}
    assert objs[1]["spec"] == {"selector": {"matchLabels": {"app": "web"}}}


def full_report(dry_run: bool) -> Report:
    return Report(
        env="dev", dry_run=dry_run,
        actions=[(NS, "unchanged"), (CM, "configured"), (WEB, "created"), (SECRET, "created")],
        pruned=[OLD],
        rollouts=[RolloutResult(WEB, "ready", "3/3 updated and available", 12.4)],
        notes=["kube_api off"],
    )


def test_report_lines_of_an_apply() -> None:
    assert full_report(False).lines() == [
        "ConfigMap nornos/settings: configured",
        "Deployment.apps nornos/web: created",
        "Secret nornos/db: created",
        "Service nornos/old: pruned (no longer rendered)",
        "rollout Deployment.apps nornos/web: ready after 12 s: 3/3 updated and available",
        "note: kube_api off",
        "dev: 2 created, 1 configured, 1 unchanged, 1 pruned; rollouts 1/1 ready",
    ]


def test_report_lines_of_a_dry_run_and_of_a_failure() -> None:
    dry = Report(env="prod", dry_run=True, actions=[(CM, "configured"), (NS, "unchanged")])
    assert dry.lines() == ["ConfigMap nornos/settings: would be configured",
                           "prod: 0 would be created, 1 would be configured, 1 unchanged, 0 would be pruned"]
    failed = Report(env="dev", dry_run=False, actions=[(NS, "unchanged")],
                    rollouts=[RolloutResult(WEB, "timeout", "1/3 available", 300.0),
                              RolloutResult(CM, "ready", "", 0.0)],
                    errors=["Deployment.apps nornos/web: 422 spec.replicas: Invalid value"])
    assert failed.lines()[-2:] == ["error: Deployment.apps nornos/web: 422 spec.replicas: Invalid value",
                                   "dev: 0 created, 0 configured, 1 unchanged, 0 pruned; rollouts 1/2 ready; FAILED"]
    assert not failed.ok and not failed.changed
    assert not Report(env="dev", dry_run=False, errors=["x"]).ok
    assert not Report(env="dev", dry_run=False, rollouts=[RolloutResult(WEB, "failed", "", 1)]).ok
    assert Report(env="dev", dry_run=False, rollouts=[RolloutResult(WEB, "ready", "", 1)]).ok


def test_changed() -> None:
    assert not Report(env="dev", dry_run=False, actions=[(NS, "unchanged"), (CM, "pending")]).changed
    assert Report(env="dev", dry_run=False, actions=[(CM, "configured")]).changed
    assert Report(env="dev", dry_run=False, actions=[(CM, "created")]).changed
    assert Report(env="dev", dry_run=False, pruned=[OLD]).changed


def test_report_as_dict() -> None:
    assert full_report(True).as_dict() == {
        "env": "dev", "dry_run": True, "ok": True, "changed": True,
        "actions": [{"object": "Namespace nornos", "action": "unchanged"},
                    {"object": "ConfigMap nornos/settings", "action": "configured"},
                    {"object": "Deployment.apps nornos/web", "action": "created"},
                    {"object": "Secret nornos/db", "action": "created"}],
        "pruned": ["Service nornos/old"],
        "rollouts": [{"object": "Deployment.apps nornos/web", "state": "ready",
                      "message": "3/3 updated and available", "seconds": 12.4}],
        "errors": [], "notes": ["kube_api off"],
    }
    # seconds to one decimal, as people read them
    timed = Report(env="dev", dry_run=False, rollouts=[RolloutResult(WEB, "ready", "done", 12.3456)]).as_dict()
    assert timed["rollouts"][0]["seconds"] == 12.3
    failed = Report(env="dev", dry_run=False, errors=["boom"]).as_dict()
    assert (failed["ok"], failed["changed"], failed["errors"]) == (False, False, ["boom"])


class ApiException(Exception):
    """The attributes of kubernetes.client.ApiException that the apply step reads."""

    def __init__(self, status: int | None, reason: str = "", body: str | None = None) -> None:
        super().__init__(f"({status}) {reason}")
        self.status, self.reason, self.body = status, reason, body


def test_api_error_reads_the_status_message() -> None:
    body = json.dumps({"kind": "Status", "message": 'Deployment.apps "web" is invalid: spec.selector: immutable'})
    assert _api_error(ApiException(422, "Unprocessable Entity", body)) == (
        '422 Deployment.apps "web" is invalid: spec.selector: immutable')
    assert _api_error(ApiException(409, "Conflict", json.dumps({"kind": "Status"}))) == "409 Conflict"
    assert _api_error(ApiException(500, "Internal Server Error", "not json " * 60)) == "500 " + ("not json " * 60)[:300]
    assert _api_error(ApiException(502, "Bad Gateway", "<html>" + "x" * 400)) == "502 <html>" + "x" * 294
    assert _api_error(ApiException(503, "Service Unavailable")) == "503 Service Unavailable"
    assert _api_error(ApiException(None, "")) == "None (None)"
    assert _api_error(ValueError("no route to host")) == "None no route to host"
