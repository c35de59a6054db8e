"""Reading an environment file: strict YAML (no duplicate keys), overrides merged over it, the
model validated, every problem on its own line with the path to the key."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError

from nornos_infra.errors import SpecError
from nornos_infra.spec.model import EnvSpec
from nornos_infra.spec.rules import check_rules


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader, except that a key given twice in one mapping is an error: a second
    ``workers:`` must not silently replace the first."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                continue
            key = self.construct_object(key_node, deep=deep)
            line = key_node.start_mark.line + 1
            try:
                first = seen.get(key)
                seen[key] = line
            except TypeError:
                continue
            if first is not None:
                where = f"lines {first} and {line}" if first != line else f"line {line}"
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} is given twice ({where}); keep one", key_node.start_mark)
        return super().construct_mapping(node, deep=deep)


def read_yaml(path: Path, what: str = "") -> Any:
    """A YAML file as data; SpecError (one line) when it cannot be read, is not UTF-8 text, is
    not YAML or repeats a key."""
    source = what or str(path)
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise SpecError(source, ["file not found; environments live in environments/<env>.yaml"]) from None
    except IsADirectoryError:
        raise SpecError(source, ["is a directory, not an environment file; give the env's name "
                                 "(environments/<env>.yaml)"]) from None
    except OSError as exc:
        raise SpecError(source, [f"cannot be read ({exc.strerror or exc}); check its permissions"]) from None
    except UnicodeDecodeError as exc:
        raise SpecError(source, [f"is not UTF-8 text (byte {exc.start}); save it as UTF-8"]) from None
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise SpecError(source, [f"not valid YAML{where}: {getattr(exc, 'problem', exc)}"]) from None
    except RecursionError:
        raise SpecError(source, ["nests too deeply to be an environment file"]) from None


def load(path: Path, overrides: dict[str, Any] | None = None, overrides_source: str = "") -> EnvSpec:
    """Read and validate an environment file, with ``overrides`` (env-file keys, see
    nornos_infra/overrides.py) merged over it; SpecError lists every problem."""
    source = str(path) + (f" with {overrides_source}" if overrides and overrides_source else "")
    raw = read_yaml(path)
    if not isinstance(raw, dict):
        raise SpecError(str(path), ["must be a YAML mapping of settings (name, location, pools, ...)"])
    if overrides:
        raw = merge(raw, overrides)
    try:
        spec = EnvSpec.model_validate(raw)
    except ValidationError as exc:
        raise SpecError(source, [_describe(err) for err in exc.errors()]) from None
    problems = check_rules(spec, expected_name=path.stem)
    if problems:
        raise SpecError(source, problems)
    return spec


def merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """``over`` on top of ``base``: mappings merge key by key, anything else is replaced."""
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


# What to write when a required key is missing or a list is empty.
_HINTS = {
    "admin_cidrs": "list the networks allowed to reach SSH and the Kubernetes API, e.g. [203.0.113.7/32]",
    "ssh_keys": "list at least one key as {name: admin, public_key_env: SSH_PUBLIC_KEY, "
                "public_key_file: ~/.ssh/id_ed25519.pub}",
    "pools": "define the pools, e.g. control-plane: {role: k3s_server, server_type: cx23, count: 1}",
}


def _describe(err: Any) -> str:
    loc = tuple(err["loc"])
    where = ".".join(str(p) for p in loc) or "(top level)"
    kind = err["type"]
    hint = _HINTS.get(where)
    if kind == "extra_forbidden":
        allowed = _allowed_keys(loc[:-1])
        known = f"; known keys here: {', '.join(allowed)}" if allowed else ""
        return f"{where}: unknown key (check its spelling){known}"
    if kind == "missing":
        return f"{where}: required key is missing" + (f"; {hint}" if hint else "")
    if kind == "too_short" and hint:
        return f"{where}: must not be empty; {hint}"
    if kind.startswith("ip_") and kind.endswith("_network"):
        value = err.get("input")
        try:
            network = ipaddress.ip_network(str(value), strict=False)
        except ValueError:
            return f"{where}: {value!r} is not a network in CIDR notation such as 10.0.0.0/16"
        return f"{where}: {value!r} has host bits set; write the network address {network}"
    return f"{where}: {str(err['msg']).removeprefix('Value error, ')}"


def _allowed_keys(loc: tuple[Any, ...]) -> list[str]:
    """The keys EnvSpec accepts at ``loc`` (a path of keys and list/dict indexes)."""
    model: type[BaseModel] = EnvSpec
    parts = list(loc)
    while parts:
        field = model.model_fields.get(str(parts.pop(0)))
        inner, depth = _model_in(field.annotation) if field is not None else (None, 0)
        if inner is None:
            return []
        del parts[:depth]  # skip the dict keys / list indexes between models
        model = inner
    return sorted(model.model_fields)


def _model_in(tp: Any) -> tuple[type[BaseModel] | None, int]:
    """The model inside an annotation, and how many dict/list layers wrap it."""
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return tp, 0
    origin, args = get_origin(tp), get_args(tp)
    if origin in (dict, list) and args:
        inner, depth = _model_in(args[-1])
        return inner, depth + 1
    for arg in args:  # unions and Annotated
        inner, depth = _model_in(arg)
        if inner is not None:
            return inner, depth
    return None, 0
