"""Kubernetes manifests: render (kubectl kustomize), validate, generate Secrets, apply, diff, prune, wait.

The entry point for deploys and invoke is :func:`nornos_infra.kube.environment.apply_environment`;
``python -m nornos_infra.kube <env>`` is the same from a shell.
"""
