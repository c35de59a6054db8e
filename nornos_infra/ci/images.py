"""``invoke images.pin --env E [--release TAG]``: pin an overlay's images to what the application
repository released, by digest.

The application repository (``NORNOS_APP_REPO``, owner/name) publishes a GitHub release whose tag
(``v0.8.2`` or ``0.8.2``) is the image tag of every service in ``ghcr.io``. With
``NORNOS_REPO_TOKEN`` (read access to that repository's releases and packages) this reads the
release (the latest, or ``--release``), asks the registry for each image's digest at that tag,
and writes ``newTag`` and ``digest`` into ``manifests/overlays/<env>/kustomization.yaml``.
kustomize then renders ``name:tag@sha256:...``: the tag for people, the digest for the kubelet,
so a re-pushed tag can never change what runs (checkov CKV_K8S_43).

Only the ``images:`` entries change; the rest of the file, comments included, stays as written.
``NORNOS_GITHUB_API`` and ``NORNOS_REGISTRY_URL`` point the requests elsewhere (tests).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import requests

from nornos_infra import paths
from nornos_infra.errors import UserError

DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")  # the OCI distribution spec's tag grammar
MANIFEST_TYPES = ", ".join((
    "application/vnd.oci.image.index.v1+json", "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json", "application/vnd.docker.distribution.manifest.v2+json"))


@dataclass(frozen=True)
class Pin:
    image: str  # ghcr.io/nornos/auth-service
    tag: str
    digest: str


def overlay_file(env: str) -> Path:
    return paths.manifests_dir() / "overlays" / env / "kustomization.yaml"


def overlay_images(text: str) -> list[str]:
    """The ``name:`` of each entry under the top-level ``images:`` key, in file order."""
    names, inside = [], False
    for line in text.splitlines():
        if re.match(r"^images:\s*$", line):
            inside = True
        elif inside and re.match(r"^\S", line):
            break
        elif inside and (found := re.match(r"^\s*-\s*name:\s*(\S+)\s*$", line)):
            names.append(found.group(1).strip("'\""))
    return names


def write_pins(text: str, pins: list[Pin]) -> str:
    """The overlay with each pinned image's ``newTag`` and ``digest`` set (added or replaced)."""
    by_image = {pin.image: pin for pin in pins}
    out: list[str] = []
    current: Pin | None = None
    inside = False
    for line in text.splitlines():
        if re.match(r"^images:\s*$", line):
            inside = True
        elif inside and re.match(r"^\S", line):
            inside, current = False, None
        if inside and (found := re.match(r"^(\s*)-\s*name:\s*(\S+)\s*$", line)):
            out.append(line)
            current = by_image.get(found.group(2).strip("'\""))
            if current is not None:
                indent = found.group(1) + "  "
                out += [f'{indent}newTag: "{current.tag}"', f"{indent}digest: {current.digest}"]
            continue
        if inside and current is not None and re.match(r"^\s+(newTag|digest|newName):", line):
            if re.match(r"^\s+newName:", line):
                out.append(line)
            continue  # replaced by the lines written under the name
        out.append(line)
    return "\n".join(out) + ("\n" if text.endswith("\n") else "")


class Registry:
    """The two GitHub services a pin reads: the release API and the container registry."""

    def __init__(self, token: str, environ: Mapping[str, str]) -> None:
        self.token = token
        self.api = environ.get("NORNOS_GITHUB_API", "https://api.github.com").rstrip("/")
        self.registry_url = environ.get("NORNOS_REGISTRY_URL", "")
        self.http = requests.Session()

    def release_tag(self, repo: str, release: str | None) -> str:
        path = f"releases/tags/{release}" if release else "releases/latest"
        reply = self._get(f"{self.api}/repos/{repo}/{path}", {"Authorization": f"Bearer {self.token}",
                                                              "Accept": "application/vnd.github+json"})
        if reply.status_code == 404:
            raise UserError(f"{repo} has no release {release or '(latest)'}, or NORNOS_REPO_TOKEN cannot read it")
        self._refused(reply, f"the release of {repo}")
        tag = str(reply.json().get("tag_name", ""))
        image_tag = tag[1:] if re.match(r"^v\d", tag) else tag
        if not TAG.match(image_tag):
            raise UserError(f"{repo}'s release tag {tag!r} is not an image tag")
        return image_tag

    def digest(self, image: str, tag: str) -> str:
        host, _, name = image.partition("/")
        base = self.registry_url.rstrip("/") or f"https://{host}"
        token = self._pull_token(base, host, name)
        reply = self.http.head(f"{base}/v2/{name}/manifests/{tag}", timeout=30, allow_redirects=True,
                               headers={"Authorization": f"Bearer {token}", "Accept": MANIFEST_TYPES})
        if reply.status_code == 404:
            raise UserError(f"{image}:{tag} is not in the registry: was the release published?")
        self._refused(reply, f"{image}:{tag}")
        digest = reply.headers.get("Docker-Content-Digest", "")
        if not DIGEST.match(digest):
            raise UserError(f"the registry gave {image}:{tag} no sha256 digest ({digest[:80]!r})")
        return digest

    def _pull_token(self, base: str, host: str, name: str) -> str:
        reply = self.http.get(f"{base}/token", params={"scope": f"repository:{name}:pull", "service": host},
                              auth=("nornos", self.token), timeout=30)
        self._refused(reply, f"a pull token for {host}/{name}")
        return str(reply.json().get("token", ""))

    def _get(self, url: str, headers: dict[str, str]) -> requests.Response:
        try:
            return self.http.get(url, headers=headers, timeout=30)
        except requests.RequestException as exc:
            raise UserError(f"{url.split('/repos/')[0]} could not be reached ({type(exc).__name__})") from None

    @staticmethod
    def _refused(reply: requests.Response, what: str) -> None:
        if reply.status_code in (401, 403):
            raise UserError(f"{what}: refused ({reply.status_code}); NORNOS_REPO_TOKEN needs read access to the "
                            "application repository's contents and packages")
        if reply.status_code >= 300:
            raise UserError(f"{what}: {reply.status_code} {reply.text[:200]}")


def pin(env: str, release: str | None = None, environ: Mapping[str, str] | None = None) -> list[Pin]:
    """Resolve every image of the overlay, then write them all (nothing is written when one fails)."""
    environ = os.environ if environ is None else environ
    token, repo = environ.get("NORNOS_REPO_TOKEN", ""), environ.get("NORNOS_APP_REPO", "")
    if not token:
        raise UserError("NORNOS_REPO_TOKEN is not set: it reads the application repository's releases")
    if not re.match(r"^[\w.-]+/[\w.-]+$", repo):
        raise UserError(f"NORNOS_APP_REPO {repo!r} is not owner/name (the application repository)")
    target = overlay_file(env)
    if not target.is_file():
        raise UserError(f"{target} does not exist: no overlay for {env!r}")
    text = target.read_text()
    images = overlay_images(text)
    if not images:
        raise UserError(f"{target} lists no images: nothing to pin")
    registry = Registry(token, environ)
    tag = registry.release_tag(repo, release)
    pins = [Pin(image, tag, registry.digest(image, tag)) for image in images]
    updated = write_pins(text, pins)
    if updated != text:
        target.write_text(updated)
    return pins
