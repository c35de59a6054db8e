"""apt_update and apt_packages (nornos_infra/roles/ops.py, scripts in aptsh.py).

Two levels: the operations under pyinfra's @fake connector (what they decide from the facts),
and the very scripts they send to a host, run here with a scripted stand-in for apt-get
(what they do when apt fails: retry, check the lists, never leave a stamp over broken lists,
name the host, the operation and apt's own error line)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from nornos_infra.roles import aptsh

ROOT = Path(__file__).resolve().parents[2]
WHO = "web-1: Base | Update apt lists"
FETCH_503 = "E: Failed to fetch http://deb.debian.org/debian/dists/bookworm/InRelease  503  Service Unavailable"

# A stand-in for apt-get: each call takes the next step of its kind from scenario.json
# ({"update": [...], "install": [...]}, the last step repeats); a step is {"rc", "out",
# "lists": "complete"|"missing"|"keep", "sleep"}. indextargets names two Packages targets
# under $FAKE_APT/lists, as apt does whether the files exist or not.
FAKE_APT_GET = textwrap.dedent("""\
    #!{python}
    import json, os, sys, time
    from pathlib import Path
    base = Path(os.environ["FAKE_APT"])
    lists = base / "lists"
    targets = [lists / f"deb.debian.org_debian_dists_{{s}}_main_binary-amd64_Packages" for s in ("bookworm",
               "bookworm-updates")]
    args = sys.argv[1:]
    if "indextargets" in args:
        for t in targets:
            print(t, "amd64", "main/binary-amd64/Packages")
        print(lists / "deb.debian.org_debian_dists_bookworm_main_binary-all_Packages", "all",
              "main/binary-all/Packages")
        sys.exit(0)
    kind = "update" if "update" in args else "install"
    with (base / "calls").open("a") as log:
        log.write(kind + " " + " ".join(args) + "\\n")
    steps = json.loads((base / "scenario.json").read_text())[kind]
    counter = base / f"count-{{kind}}"
    n = int(counter.read_text()) if counter.exists() else 0
    counter.write_text(str(n + 1))
    step = steps[min(n, len(steps) - 1)]
    time.sleep(step.get("sleep", 0))
    lists.mkdir(exist_ok=True)
    if step.get("lists") == "complete":
        for t in targets:
            Path(str(t) + ".lz4").write_text("Package: x\\n")
            Path(str(t).rsplit("main_binary", 1)[0] + "InRelease").write_text("signed")
    elif step.get("lists") == "missing":
        for f in lists.glob("*bookworm_*"):
            f.unlink()
    print(step.get("out", ""))
    sys.exit(step.get("rc", 0))
""")


class FakeApt:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.bin = root / "bin"
        self.bin.mkdir()
        self.stamp = root / "periodic" / "update-success-stamp"
        (self.bin / "apt-get").write_text(FAKE_APT_GET.format(python=sys.executable))
        (self.bin / "sleep").write_text("#!/bin/sh\nexit 0\n")  # no waiting between attempts here
        (self.bin / "dpkg").write_text("#!/bin/sh\necho \"dpkg $*\" >> \"$FAKE_APT/calls\"\n")
        for f in self.bin.iterdir():
            f.chmod(0o755)

    def lists_complete(self, stamp_age_minutes: int | None = None) -> None:
        (self.root / "scenario.json").write_text(json.dumps({"update": [{"lists": "complete"}], "install": [{}]}))
        self.run_script("apt-get update")
        (self.root / "calls").unlink()
        for f in self.root.glob("count-*"):
            f.unlink()
        self.stamp.unlink(missing_ok=True)
        if stamp_age_minutes is not None:
            self.touch_stamp(stamp_age_minutes)

    def touch_stamp(self, age_minutes: int) -> None:
        self.stamp.parent.mkdir(parents=True, exist_ok=True)
        self.stamp.touch()
        past = self.stamp.stat().st_mtime - age_minutes * 60
        os.utime(self.stamp, (past, past))

    def run_script(self, script: str, **scenario: list[dict[str, Any]]) -> subprocess.CompletedProcess[str]:
        if scenario:
            (self.root / "scenario.json").write_text(json.dumps({"update": [{}], "install": [{}], **scenario}))
        env = {**os.environ, "FAKE_APT": str(self.root), "PATH": f"{self.bin}:{os.environ['PATH']}"}
        return subprocess.run(["sh", "-c", script], capture_output=True, text=True, env=env, timeout=60)

    def calls(self) -> list[str]:
        path = self.root / "calls"
        return [line.split()[0] for line in path.read_text().splitlines()] if path.exists() else []

    def update(self, attempts: int = 3, timeout: int = 30, **scenario: list[dict[str, Any]]
               ) -> subprocess.CompletedProcess[str]:
        return self.run_script(aptsh.update_script(WHO, 6 * 3600, timeout, attempts, stamp=str(self.stamp)),
                               **scenario)

    def install(self, attempts: int = 4, **scenario: list[dict[str, Any]]) -> subprocess.CompletedProcess[str]:
        return self.run_script(aptsh.install_script("web-1: Base | Install base packages", ["curl", "less"], 30,
                                                    attempts, 3, stamp=str(self.stamp)), **scenario)


@pytest.fixture
def apt(tmp_path: Path) -> FakeApt:
    return FakeApt(tmp_path)


# -- the update script ----------------------------------------------------------------------
def test_a_failed_fetch_is_retried_and_the_stamp_written_after_success(apt: FakeApt) -> None:
    done = apt.update(update=[{"rc": 100, "out": FETCH_503, "lists": "missing"}, {"lists": "complete"}])
    assert done.returncode == 0, done.stderr
    assert apt.calls() == ["update", "update"] and apt.stamp.exists()
    assert "attempt 1 of 3 failed, retrying" in done.stderr and "503" in done.stderr


def test_every_update_asks_apt_to_fail_on_any_failed_fetch(apt: FakeApt) -> None:
    apt.update(update=[{"lists": "complete"}])
    assert "-o APT::Update::Error-Mode=any" in (apt.root / "calls").read_text()


def test_the_update_is_tried_20_times_by_default(apt: FakeApt) -> None:
    """10 whole-run attempts were once all unlucky through a proxy failing 20 % of requests."""
    from nornos_infra.roles import ops

    assert ops.UPDATE_ATTEMPTS == 20
    done = apt.update(attempts=ops.UPDATE_ATTEMPTS,
                      update=[{"rc": 100, "out": "E: Failed to fetch http://x/InRelease  503"}] * 19
                      + [{"lists": "complete"}])
    assert done.returncode == 0, done.stderr[-2000:]
    assert apt.calls() == ["update"] * 20


def test_an_update_that_exits_0_without_the_indexes_fails_and_leaves_no_stamp(apt: FakeApt) -> None:
    apt.touch_stamp(age_minutes=600)  # an old stamp from an earlier run goes too
    done = apt.update(attempts=2, update=[{"rc": 0, "lists": "missing", "out": "W: Some index files failed"}])
    assert done.returncode == 1
    assert not apt.stamp.exists()
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith(f"nornos: {WHO}: apt-get update failed 2 times: ")
    assert "lists are missing" in last and "bookworm_main_binary-amd64_Packages" in last
    assert "binary-all" not in last  # Debian folds "all" into the architectures


def test_a_failure_names_the_host_the_operation_and_apts_error_line(apt: FakeApt) -> None:
    done = apt.update(attempts=3, update=[{"rc": 100, "out": f"Err:1 http://deb.debian.org bookworm InRelease\n"
                                                              f"{FETCH_503}\nE: Some index files failed to download"}])
    assert done.returncode == 1 and apt.calls() == ["update"] * 3
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith(f"nornos: {WHO}: apt-get update failed 3 times: ")
    assert FETCH_503 in last


def test_fresh_and_complete_lists_are_not_updated_again(apt: FakeApt) -> None:
    apt.lists_complete(stamp_age_minutes=5)
    done = apt.update(update=[{"rc": 100, "out": FETCH_503}])
    assert done.returncode == 0 and apt.calls() == [] and "apt lists are fresh" in done.stdout


def test_missing_lists_under_a_fresh_stamp_are_updated(apt: FakeApt) -> None:
    apt.touch_stamp(age_minutes=1)  # the incident: a fresh stamp over lists without bookworm main
    done = apt.update(update=[{"lists": "complete"}])
    assert done.returncode == 0 and apt.calls() == ["update"]


def test_a_stalled_update_is_killed_and_retried(apt: FakeApt) -> None:
    done = apt.update(timeout=3, update=[{"sleep": 30}, {"lists": "complete"}])
    assert done.returncode == 0, done.stderr
    assert "timed out after 3 s" in done.stderr and apt.calls() == ["update", "update"]


# -- the install script ---------------------------------------------------------------------
def test_no_candidate_refreshes_the_lists_once_and_installs(apt: FakeApt) -> None:
    apt.lists_complete(stamp_age_minutes=5)
    done = apt.install(install=[{"rc": 100, "out": "E: Package 'curl' has no installation candidate"}, {}],
                       update=[{"lists": "complete"}])
    assert done.returncode == 0, done.stderr
    assert apt.calls() == ["install", "update", "install"]
    assert "refreshing the apt lists once" in done.stderr and apt.stamp.exists()


def test_no_candidate_after_the_refresh_fails_with_apts_words(apt: FakeApt) -> None:
    done = apt.install(install=[{"rc": 100, "out": "E: Unable to locate package curl"}],
                       update=[{"lists": "complete"}])
    assert done.returncode == 1
    assert apt.calls() == ["install", "update", "install"]
    assert done.stderr.strip().splitlines()[-1] == (
        "nornos: web-1: Base | Install base packages: apt-get install: no candidate even after refreshing the "
        "lists: E: Unable to locate package curl")


def test_lock_waits_and_broken_downloads_are_retried(apt: FakeApt) -> None:
    done = apt.install(install=[
        {"rc": 100, "out": "E: Could not get lock /var/lib/dpkg/lock-frontend. It is held by process 77 (apt-get)"},
        {"rc": 100, "out": "E: Failed to fetch http://deb.debian.org/debian/pool/main/c/curl/curl.deb  Connection "
                           "failed\nE: Unable to fetch some archives, maybe run apt-get update"},
        {"rc": 100, "out": "E: dpkg was interrupted, you must manually run 'dpkg --configure -a'"},
        {}])
    assert done.returncode == 0, done.stderr
    assert apt.calls() == ["install", "install", "install", "dpkg", "install"]


def test_retries_stop_at_the_budget(apt: FakeApt) -> None:
    done = apt.install(attempts=3, install=[{"rc": 100, "out": "E: Failed to fetch x  503  Service Unavailable"}])
    assert done.returncode == 1 and apt.calls() == ["install"] * 3
    assert "apt-get install failed 3 times: E: Failed to fetch x  503  Service Unavailable" in done.stderr


def test_a_real_error_fails_at_once(apt: FakeApt) -> None:
    done = apt.install(install=[{"rc": 100, "out": "E: Unable to correct problems, you have held broken packages."}])
    assert done.returncode == 1 and apt.calls() == ["install"]
    assert "apt-get install failed: E: Unable to correct problems" in done.stderr


def test_a_refresh_that_fails_fails_the_install(apt: FakeApt) -> None:
    done = apt.install(install=[{"rc": 100, "out": "E: Package 'curl' has no installation candidate"}],
                       update=[{"rc": 100, "out": FETCH_503}])
    assert done.returncode == 1
    assert "refreshing the apt lists failed: " + FETCH_503 in done.stderr.strip().splitlines()[-1]


def test_the_lists_fact() -> None:
    assert aptsh.parse_lists_fact(["age 120", "missing /var/lib/apt/lists/a_InRelease"]) == {
        "age": 120, "missing": ["/var/lib/apt/lists/a_InRelease"]}
    assert aptsh.parse_lists_fact(["age none"]) == {"age": None, "missing": []}


def test_the_lists_fact_command_on_this_shell(apt: FakeApt) -> None:
    apt.lists_complete(stamp_age_minutes=2)
    out = apt.run_script(aptsh.lists_fact(str(apt.stamp))).stdout.split("\n")
    assert aptsh.parse_lists_fact(out)["missing"] == [] and 100 <= aptsh.parse_lists_fact(out)["age"] <= 200
    for f in (apt.root / "lists").glob("*bookworm_InRelease"):
        f.unlink()
    missing = aptsh.parse_lists_fact(apt.run_script(aptsh.lists_fact(str(apt.stamp))).stdout.split("\n"))["missing"]
    assert missing == [str(apt.root / "lists" / "deb.debian.org_debian_dists_bookworm_InRelease")]


# -- the operations under pyinfra's @fake connector --------------------------------------------
def run_fake(lists: list[str], installed: list[str], packages: list[str]) -> list[str]:
    spec = {"lists": lists, "dpkg": [f"ii  {p}  1.0-1  amd64  a package" for p in installed], "packages": packages}
    proc = subprocess.run([sys.executable, "-m", "tests.unit.helpers.fake_apt"], input=json.dumps(spec),
                          capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(out for out in proc.stdout.splitlines() if out.startswith("JSON:"))
    return list(json.loads(line[5:])["scripts"])


def test_fresh_complete_lists_and_installed_packages_change_nothing() -> None:
    assert run_fake(["age 60"], ["curl", "less"], ["curl", "less"]) == []


@pytest.mark.parametrize("lists", [["age none"], [f"age {7 * 3600}"],
                                   ["age 60", "missing /var/lib/apt/lists/x_bookworm_main_binary-amd64_Packages"]],
                         ids=["no stamp", "old stamp", "fresh stamp over missing lists"])
def test_the_update_runs_unless_the_lists_are_fresh_and_complete(lists: list[str]) -> None:
    scripts = run_fake(lists, ["curl", "less"], ["curl", "less"])
    assert len(scripts) == 1 and "apt-get update -q -o APT::Update::Error-Mode=any" in scripts[0]
    assert "nornos_who='@fake/web-1: Base | Update apt lists'" in scripts[0]


def test_only_missing_packages_are_installed() -> None:
    scripts = run_fake(["age 60"], ["curl"], ["curl", "less"])
    assert len(scripts) == 1 and "nornos_who='@fake/web-1: Base | Install base packages'" in scripts[0]
    assert "-o Dpkg::Options::=--force-confold less 2>&1" in scripts[0]
