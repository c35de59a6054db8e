"""nornos_infra: the library behind provision.py, the deploys and the manifests step."""
