"""The dry-run diff a person reads (``--dry-run``): exactly the lines of ``kubectl diff --server-side``
for one object, with what the API server adds itself left out and every Secret value masked."""

from __future__ import annotations

import copy
from typing import Any

from nornos_infra.kube.diff import mask_secrets, unified
from nornos_infra.kube.model import ObjRef

# what a real API server returns on a GET or on a dry-run apply: the object plus fields it sets itself
SERVER_SET = {"managedFields": [{"manager": "nornos-infra", "operation": "Apply"}], "resourceVersion": "812",
              "uid": "6b1e0f5c-uid", "generation": 4, "creationTimestamp": "2026-11-30T10:00:00Z",
              "selfLink": "/apis/apps/v1/namespaces/nornos/deployments/web"}


def deployment(replicas: int, image: str = "web:1", **meta: Any) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "nornos", **meta},
            "spec": {"replicas": replicas, "template": {"spec": {"containers": [{"name": "web", "image": image}]}}},
            "status": {"replicas": replicas, "readyReplicas": 1, "observedGeneration": 4}}


DEPLOYMENT = ObjRef("apps", "Deployment", "nornos", "web")


def test_a_change_is_a_unified_diff_without_server_set_fields() -> None:
    live = deployment(2, **SERVER_SET, annotations={"deployment.kubernetes.io/revision": "3"})
    merged = deployment(3, **{**SERVER_SET, "resourceVersion": "813", "generation": 5},
                        annotations={"deployment.kubernetes.io/revision": "3"})
    assert unified(DEPLOYMENT, live, merged) == (
        "--- live/apps.Deployment.nornos.web\n"
        "+++ merged/apps.Deployment.nornos.web\n"
        "@@ -4,7 +4,7 @@\n"
        "   name: web\n"
        "   namespace: nornos\n"
        " spec:\n"
        "-  replicas: 2\n"
        "+  replicas: 3\n"
        "   template:\n"
        "     spec:\n"
        "       containers:\n"
    )


def test_annotations_other_than_the_revision_are_shown() -> None:
    live = deployment(2, annotations={"deployment.kubernetes.io/revision": "3", "team": "care"})
    merged = deployment(2, annotations={"deployment.kubernetes.io/revision": "4", "team": "platform"})
    text = unified(DEPLOYMENT, live, merged)
    assert "-    team: care\n" in text and "+    team: platform\n" in text
    assert "revision" not in text
    # only the revision changed: nothing to show
    assert unified(DEPLOYMENT, deployment(2, annotations={"deployment.kubernetes.io/revision": "3"}),
                   deployment(2, annotations={"deployment.kubernetes.io/revision": "9"})) == ""


def test_server_set_fields_alone_are_no_change() -> None:
    live = deployment(2, **SERVER_SET)
    merged = deployment(2, **{**SERVER_SET, "resourceVersion": "999", "generation": 9, "uid": "other",
                              "managedFields": [], "creationTimestamp": "2026-12-01T00:00:00Z", "selfLink": "/x"})
    merged["status"] = {"replicas": 0}
    assert unified(DEPLOYMENT, live, merged) == ""


def test_the_objects_given_are_left_as_they_were() -> None:
    live = deployment(2, **SERVER_SET, annotations={"deployment.kubernetes.io/revision": "3"})
    merged = deployment(3, **SERVER_SET)
    before = copy.deepcopy((live, merged))
    unified(DEPLOYMENT, live, merged)
    assert (live, merged) == before
    secret_live, secret_merged = secret(data={"a": "MQ=="}), secret(data={"a": "Mg=="})
    before = copy.deepcopy((secret_live, secret_merged))
    unified(SECRET, secret_live, secret_merged)
    assert (secret_live, secret_merged) == before  # the values are masked in copies only


def test_a_new_object_and_a_pruned_one_are_all_additions_or_all_removals() -> None:
    ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "nornos", **SERVER_SET}}
    ref = ObjRef("", "Namespace", "", "nornos")
    assert unified(ref, None, ns) == (
        "--- live/core.Namespace._.nornos\n"
        "+++ merged/core.Namespace._.nornos\n"
        "@@ -0,0 +1,4 @@\n"
        "+apiVersion: v1\n"
        "+kind: Namespace\n"
        "+metadata:\n"
        "+  name: nornos\n"
    )
    assert unified(ref, ns, None) == (
        "--- live/core.Namespace._.nornos\n"
        "+++ merged/core.Namespace._.nornos\n"
        "@@ -1,4 +0,0 @@\n"
        "-apiVersion: v1\n"
        "-kind: Namespace\n"
        "-metadata:\n"
        "-  name: nornos\n"
    )


SECRET = ObjRef("", "Secret", "nornos", "app")


def secret(**fields: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "app", "namespace": "nornos"}, **fields}


def test_secret_values_are_masked_like_kubectl_masks_them() -> None:
    live = secret(data={"same": "c2FtZQ==", "changed": "b2xk", "dropped": "Z29uZQ=="},
                  stringData={"plain": "old-plain"})
    merged = secret(data={"same": "c2FtZQ==", "changed": "bmV3", "added": "YWRkZWQ="},
                    stringData={"plain": "new-plain"})
    text = unified(SECRET, live, merged)
    lines = set(text.splitlines())
    assert {"-  changed: '*** (before)'", "+  changed: '*** (after)'", "-  dropped: '*** (before)'",
            "+  added: '*** (after)'", "-  plain: '*** (before)'", "+  plain: '*** (after)'"} <= lines
    assert "   same: '***'" in lines  # unchanged, as context
    for value in ("c2FtZQ==", "b2xk", "bmV3", "Z29uZQ==", "YWRkZWQ=", "old-plain", "new-plain"):
        assert value not in text
    assert not any(line.startswith(("-", "+")) and "same" in line for line in lines)


def test_an_unchanged_secret_is_no_diff_and_a_pruned_or_new_one_shows_no_value() -> None:
    assert unified(SECRET, secret(data={"k": "dg=="}), secret(data={"k": "dg=="})) == ""
    pruned = unified(SECRET, secret(data={"k": "dg=="}, stringData={"s": "plain"}), None)
    assert "-  k: '*** (before)'\n" in pruned and "-  s: '*** (before)'\n" in pruned and "dg==" not in pruned
    new = unified(SECRET, None, secret(data={"k": "dg=="}))
    assert "+  k: '*** (after)'\n" in new and "dg==" not in new


def test_other_kinds_show_their_data() -> None:
    ref = ObjRef("", "ConfigMap", "nornos", "settings")
    live = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings", "namespace": "nornos"},
            "data": {"LOG_LEVEL": "info"}}
    merged = copy.deepcopy(live)
    merged["data"]["LOG_LEVEL"] = "debug"
    text = unified(ref, live, merged)
    assert "-  LOG_LEVEL: info\n" in text and "+  LOG_LEVEL: debug\n" in text
    assert "--- live/core.ConfigMap.nornos.settings\n" in text


def test_key_order_alone_is_no_change() -> None:
    live = {"kind": "ConfigMap", "apiVersion": "v1", "metadata": {"namespace": "nornos", "name": "s"},
            "data": {"b": "2", "a": "1"}}
    merged = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "s", "namespace": "nornos"},
              "data": {"a": "1", "b": "2"}}
    assert unified(ObjRef("", "ConfigMap", "nornos", "s"), live, merged) == ""


def test_masking_returns_copies_and_leaves_the_secrets_given_alone() -> None:
    live, merged = secret(data={"a": "MQ=="}), secret(data={"a": "Mg==", "b": "Mw=="})
    before = copy.deepcopy((live, merged))
    masked_live, masked_merged = mask_secrets(live, merged)
    assert (masked_live or {})["data"] == {"a": "*** (before)"}
    assert (masked_merged or {})["data"] == {"a": "*** (after)", "b": "*** (after)"}
    assert (live, merged) == before
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "data": {"a": "1"}}
    assert mask_secrets(cm, cm) == (cm, cm)
