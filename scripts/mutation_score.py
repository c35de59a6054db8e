#!/usr/bin/env python3
"""Mutation score of nornos_infra/cloud, nornos_infra/kube and the pure parts of the roles, with mutmut.

mutmut generates the mutants (operators, constants, comparisons, arguments, ...) itself; for each
one it runs only the tests that reach the mutated function. It never touches this working tree:
each package is scored in its own temporary copy of the repository (HEAD, or ``--worktree``),
where mutmut writes its ``mutants/`` folder.

    .venv/bin/python scripts/mutation_score.py                  # every package, from HEAD
    .venv/bin/python scripts/mutation_score.py roles kube       # only these packages
    .venv/bin/python scripts/mutation_score.py --worktree cloud # uncommitted changes too
    .venv/bin/python scripts/mutation_score.py --survivors      # also list each surviving mutant
    .venv/bin/python scripts/mutation_score.py kube --files 'nornos_infra/kube/generated.py'  # a part only
    .venv/bin/python scripts/mutation_score.py cloud --sample 300 --seed 1  # a uniform random sample

A mutant is killed when a test fails (or times out) with it. "no tests" mutants (code no selected
selected test reaches) are counted as not killed. Code that provision.py runs in a subprocess of a test
counts as reached by that test (a bridge added to the copy's tests/support/sitecustomize.py and
tests/conftest.py). For the roles only the pure functions count (sizing, scram, the
firewall rule context, the apt, Redis ACL and pg_hba renderers); the pyinfra deploys are not scored.

With ``--sample N`` mutmut generates every mutant and learns which tests reach which function as
usual, then tests only N mutants drawn uniformly at random (``--seed`` makes the draw repeatable).
The score is then an estimate of the whole package's, printed with its 95 % confidence interval
(Wilson): the way to score a package whose full run does not fit on the machine (cloud here, where
every surviving mutant reruns the API tests that reach it).

The score per package is printed at the end; exit status 0 unless a run failed to complete.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import math
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
from mutations import copy_tree  # noqa: E402  (the same copy of the tree the hand mutations use)


@dataclass(frozen=True)
class Package:
    name: str
    files: tuple[str, ...]  # globs, relative to the repository
    tests: tuple[str, ...]  # the tests that run against its mutants
    functions: tuple[str, ...] = ()  # when set, only mutants of these functions count
    env: tuple[tuple[str, str], ...] = ()  # set for every test run of this package


CLOUD_API_TESTS = ("tests/api/test_updates.py", "tests/api/test_waiter.py", "tests/api/test_provision.py")

PACKAGES: tuple[Package, ...] = (
    # localcloud's actions due at once (tests/conftest.py): the API tests, which run provision.py
    # against it, pass at that scale too and take about a third less time per mutant
    Package("cloud", ("nornos_infra/cloud/*",),
            ("tests/unit", *CLOUD_API_TESTS), env=(("NORNOS_TEST_TIME_SCALE", "0"),)),
    Package("kube", ("nornos_infra/kube/*",),
            ("tests/unit",)),
    Package("roles", ("nornos_infra/roles/sizing.py", "nornos_infra/roles/scram.py", "nornos_infra/roles/firewall.py",
                      "nornos_infra/roles/aptsh.py", "nornos_infra/roles/redis.py", "nornos_infra/roles/postgres.py"),
            ("tests/unit",),
            functions=("sizing.", "scram.", "firewall.x_rule_context", "firewall.x_allowed_ssh",
                       "aptsh.", "redis.x_acl_file", "postgres.x_hba_entries")),
)

KILLED = {"killed", "timeout"}
# a mutant mutmut had not reached (or was testing) when a --budget run was stopped: no verdict,
# so it counts neither way and is reported apart
UNTESTED = {"not checked", "check was interrupted by user"}


def configure(tree: Path, package: Package) -> None:
    """The [tool.mutmut] section of the copy's pyproject.toml (the working tree's is never changed)."""
    also_copy = sorted(p.name for p in tree.iterdir() if p.name not in {"nornos_infra", "mutants", ".git"})

    def toml_list(items: tuple[str, ...] | list[str]) -> str:
        return "[" + ", ".join(f'"{i}"' for i in items) + "]"

    section = (
        "\n[tool.mutmut]\n"
        'source_paths = ["nornos_infra"]\n'
        f"only_mutate = {toml_list(package.files)}\n"
        f"also_copy = {toml_list(also_copy)}\n"
        f"pytest_add_cli_args = {toml_list(['-p', 'no:cacheprovider', '-p', 'no:xdist', '-q'])}\n"
        f"pytest_add_cli_args_test_selection = {toml_list(package.tests)}\n"
        "use_git_change_detection = false\n"
    )
    pyproject = tree / "pyproject.toml"
    pyproject.write_text(pyproject.read_text() + section)


# mutmut learns which tests reach a function from the calls it sees in the pytest process; code that
# provision.py runs in a subprocess would look untested. In the copy only, the subprocesses (which load
# tests/support/sitecustomize.py) write the functions they reach to files, and the pytest process hands
# those to mutmut when each test ends.
SUBPROCESS_HITS = """

if os.environ.get("MUTANT_UNDER_TEST") == "stats" and os.environ.get("NORNOS_MUTMUT_HITS"):
    import mutmut.mutation.trampoline as _trampoline

    _hits_file = os.path.join(os.environ["NORNOS_MUTMUT_HITS"], f"{os.getpid()}.hits")
    _seen: set[str] = set()

    def _record(name: str, caller: str | None = None) -> None:
        if name not in _seen:
            _seen.add(name)
            with open(_hits_file, "a", encoding="utf-8") as out:
                out.write(name + "\\n")

    _trampoline.record_trampoline_hit = _record  # type: ignore[assignment]
"""

HAND_OVER_HITS = """


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_teardown(item: pytest.Item) -> None:
    directory = os.environ.get("NORNOS_MUTMUT_HITS")
    if os.environ.get("MUTANT_UNDER_TEST") != "stats" or not directory:
        return
    import mutmut

    for path in Path(directory).glob("*.hits"):
        mutmut.state()._stats.update(filter(None, path.read_text().splitlines()))
        path.unlink()
"""


# mutmut hands pytest a mutant's tests in no particular order and stops at the first failure (-x). In
# the copy only, the tests run fastest first (by the durations mutmut recorded in its stats pass),
# module by module so that module-scoped fixtures are set up once: a mutant a unit test kills no
# longer waits for the API tests first. The verdict is the same; a survivor still runs every test.
ORDER_TESTS = """


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    stats = Path(__file__).resolve().parents[1] / "mutmut-stats.json"
    if not os.environ.get("MUTANT_UNDER_TEST") or not stats.exists():
        return
    import json

    took = json.loads(stats.read_text()).get("duration_by_test") or {}
    first_by_module: dict[str, float] = {}
    for item in items:
        module = item.nodeid.split("::")[0]
        first_by_module[module] = min(first_by_module.get(module, float("inf")), took.get(item.nodeid, 0.0))
    items.sort(key=lambda item: (first_by_module[item.nodeid.split("::")[0]], item.nodeid.split("::")[0],
                                 took.get(item.nodeid, 0.0)))
"""


def bridge_subprocesses(tree: Path, hits: Path) -> None:
    sitecustomize = tree / "tests" / "support" / "sitecustomize.py"
    sitecustomize.write_text(sitecustomize.read_text() + SUBPROCESS_HITS)
    conftest = tree / "tests" / "conftest.py"
    text = conftest.read_text()
    for needed in ("import os\n", "from pathlib import Path\n", "import pytest\n"):
        if needed not in text:
            raise RuntimeError(f"tests/conftest.py no longer has {needed.strip()!r}: update scripts/mutation_score.py")
    conftest.write_text(text + HAND_OVER_HITS + ORDER_TESTS)
    hits.mkdir()


def counted(package: Package, mutant: str) -> bool:
    return not package.functions or any(f in mutant for f in package.functions)


def list_mutants(tree: Path, env: dict[str, str]) -> list[tuple[str, str]]:
    """(mutant, status) for every mutant mutmut generated in the copy."""
    listing = subprocess.run([str(Path(sys.executable).with_name("mutmut")), "results", "--all", "true"], cwd=tree,
                             env=env, capture_output=True, text=True, check=True).stdout
    found = (re.match(r"\s+(\S+): (.+)$", line) for line in listing.splitlines())
    return [(m.group(1), m.group(2).strip()) for m in found if m]


# mutmut tests the mutants it is given cheapest first, so a run stopped early (--budget) would have
# scored a subset biased toward mutants few tests reach. A --sample run starts mutmut through this
# wrapper instead, which orders them by a seeded shuffle: every prefix of the run is then itself a
# uniform sample, and a stopped run still estimates the whole package's score.
SHUFFLED_RUN = """
import random
import sys

import mutmut.__main__ as mutmut_main

rng = random.Random(int(sys.argv.pop(1)))
keys: dict[str, float] = {}
mutmut_main.estimated_worst_case_time = lambda name: keys.setdefault(name, rng.random())
sys.argv[0] = "mutmut"
mutmut_main.cli()
"""


def run_within(command: list[str], tree: Path, env: dict[str, str], out: Any, budget_s: float | None) -> int | None:
    """Run mutmut; past the budget, interrupt it as Ctrl-C would (it stops its workers and saves what
    it has). Returns its exit status, or None when the budget stopped it."""
    # a session of its own: the workers mutmut kills at the stop never tear down their fixtures, so the
    # localcloud servers their tests started are ended with the group
    proc = subprocess.Popen(command, cwd=tree, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        return proc.wait(timeout=budget_s)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        return None


# a filter that matches no mutant: mutmut generates the mutants and collects its stats (which test
# reaches which function, saved in the copy for the next run), then stops, saying nothing matched
MATCHES_NOTHING = "nornos-no-such-mutant"


def draw_sample(tree: Path, env: dict[str, str], run: list[str], package: Package, size: int, seed: int,
                out: Any) -> set[str]:
    proc = subprocess.run([*run, MATCHES_NOTHING], cwd=tree, env=env, capture_output=True, text=True)
    if out is not subprocess.DEVNULL:
        out.write(proc.stdout + proc.stderr)
    if "nothing matches" not in proc.stdout + proc.stderr:
        raise RuntimeError(f"mutmut could not list {package.name}'s mutants (exit {proc.returncode}): "
                           f"{(proc.stdout + proc.stderr).strip().splitlines()[-1:]}")
    population = sorted(name for name, _ in list_mutants(tree, env) if counted(package, name))
    return set(random.Random(seed).sample(population, min(size, len(population))))


def wilson_interval(killed: int, total: int, z: float = 1.96) -> tuple[float, float]:
    """95 % confidence interval of a proportion measured on a random sample (Wilson score interval)."""
    if total == 0:
        return 0.0, 0.0
    p = killed / total
    centre = (p + z * z / (2 * total)) / (1 + z * z / total)
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / (1 + z * z / total)
    return max(0.0, centre - half), min(1.0, centre + half)


def score(package: Package, worktree: bool, children: int, survivors: bool, log: Path | None,
          sample: int = 0, seed: int = 1, budget_s: float | None = None) -> tuple[Counter[str], float]:
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", **dict(package.env)}
    spec = ROOT.parent / "shared" / "reference" / "hcloud-openapi.json"
    if "HCLOUD_OPENAPI" not in env and spec.exists():
        env["HCLOUD_OPENAPI"] = str(spec)  # the copy is not beside ../shared: keep the conformance checks
    mutmut = [str(Path(sys.executable).with_name("mutmut"))]
    with tempfile.TemporaryDirectory(prefix=f"nornos-mutmut-{package.name}-") as tmp:
        tree = Path(tmp)
        copy_tree(tree, worktree)
        configure(tree, package)
        hits = tree / ".mutmut-hits"
        bridge_subprocesses(tree, hits)
        env["NORNOS_MUTMUT_HITS"] = str(hits)
        start = time.monotonic()
        out = open(log, "w") if log else subprocess.DEVNULL  # noqa: SIM115
        chosen: set[str] | None = None
        try:
            run = [*mutmut, "run", "--max-children", str(children)]
            if sample:
                chosen = draw_sample(tree, env, run, package, sample, seed, out)
                print(f"   {len(chosen)} mutants drawn (seed {seed})", flush=True)
                run = [sys.executable, "-c", SHUFFLED_RUN, str(seed), *run[1:]]
            remaining = None if budget_s is None else max(1.0, budget_s - (time.monotonic() - start))
            exit_status = run_within([*run, *sorted(chosen or ())], tree, env, out, remaining)
        finally:
            if log:
                out.close()  # type: ignore[union-attr]
        elapsed = time.monotonic() - start
        if exit_status is None:
            print(f"   stopped after the budget of {budget_s / 60:g} min", flush=True)  # type: ignore[operator]
        elif exit_status != 0:
            raise RuntimeError(f"mutmut run failed for {package.name} (exit {exit_status}); see {log or 'its log'}")
        listing = list_mutants(tree, env)
    results = Counter[str]()
    surviving = []
    for name, status in listing:
        if not counted(package, name) or (chosen is not None and name not in chosen):
            continue
        results[status] += 1
        if status not in KILLED | UNTESTED:
            surviving.append(f"{name}: {status}")
    if survivors:
        for s in surviving:
            print(f"  {s}")
    return results, elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("packages", nargs="*", help=f"of {', '.join(p.name for p in PACKAGES)} (default: all)")
    parser.add_argument("--worktree", action="store_true", help="copy the working tree instead of HEAD")
    parser.add_argument("--children", type=int, default=2, help="mutants tested in parallel (default 2)")
    parser.add_argument("--survivors", action="store_true", help="list the mutants not killed")
    parser.add_argument("--files", help="only these files of the package (comma-separated globs)")
    parser.add_argument("--log-dir", type=Path, help="keep mutmut's output here, one file per package")
    parser.add_argument("--sample", type=int, default=0,
                        help="test only this many mutants per package, drawn at random (the score is an estimate)")
    parser.add_argument("--seed", type=int, default=1, help="the random draw of --sample (default 1)")
    parser.add_argument("--budget", type=float, metavar="MINUTES",
                        help="stop each package's run after this long and score what has a verdict (with --sample "
                             "the mutants are tested in a random order, so what was tested is still a uniform sample)")
    args = parser.parse_args(argv)
    unknown = set(args.packages) - {p.name for p in PACKAGES}
    if unknown:
        parser.error(f"unknown package(s): {', '.join(sorted(unknown))}")
    chosen = [p for p in PACKAGES if not args.packages or p.name in args.packages]
    if args.files:
        chosen = [dataclasses.replace(p, files=tuple(args.files.split(","))) for p in chosen]
    if shutil.which("mutmut", path=str(Path(sys.executable).parent)) is None:
        print("mutmut is not installed: .venv/bin/pip install -e '.[dev]'", file=sys.stderr)
        return 1
    rows = []
    for package in chosen:
        print(f"== {package.name}: {', '.join(package.files)}; tests: {' '.join(package.tests)}", flush=True)
        log = args.log_dir / f"mutmut-{package.name}.log" if args.log_dir else None
        if log:
            log.parent.mkdir(parents=True, exist_ok=True)
        budget_s = args.budget * 60 if args.budget else None
        results, elapsed = score(package, args.worktree, args.children, args.survivors, log, args.sample, args.seed,
                                 budget_s)
        untested = sum(results.pop(u, 0) for u in UNTESTED)
        total = sum(results.values())
        killed = sum(results[k] for k in KILLED)
        pct = 100.0 * killed / total if total else 0.0
        detail = ", ".join(f"{k} {v}" for k, v in sorted(results.items())) or "no verdict"
        if untested:
            detail += f"; {untested} not tested before the budget ran out (counted neither way)"
        if args.sample:
            low, high = wilson_interval(killed, total)
            detail += f"; a random sample: 95 % confidence interval {100 * low:.1f} to {100 * high:.1f} %"
        rows.append((package.name, killed, total, pct, elapsed, detail))
        print(f"{package.name}: {killed}/{total} killed ({pct:.1f} %) in {elapsed / 60:.1f} min [{detail}]", flush=True)
    print("\npackage  killed/total  score   time")
    for name, killed, total, pct, elapsed, _ in rows:
        print(f"{name:8} {killed:5}/{total:<6} {pct:5.1f} %  {elapsed / 60:5.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
