"""The Kubernetes manifests alone: pyinfra inventories/<env>.py deploys/manifests.py"""

from nornos_infra.roles import manifests

manifests.manifests()
