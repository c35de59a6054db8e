"""The HAProxy configuration of a load balancer on real hosts (localcloud/hosts/loadbalancer.py):
what it says for representative load balancers, that HAProxy accepts it (``haproxy -c``, when
HAProxy is here), and how health is read from HAProxy's statistics."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from localcloud.hosts.loadbalancer import (
    make_certificate,
    parse_stats,
    quote,
    render_config,
    status_regex,
)
from localcloud.machines import HealthCheck, LbNic, LbSpec, Service, Target

WEB = (Target("server-3-10.0.1.3", "10.0.1.3"), Target("server-4-10.0.1.4", "10.0.1.4"))
HTTP_CHECK = HealthCheck("http", 8080, 3, 2, 2, path="/healthz", domain="example.org", status_codes=("200", "3??"),
                         response="ok")
WEB_LB = LbSpec(7, "round_robin", "198.51.100.254", "2001:db8:1b:1::1", (LbNic(1, "10.0.0.0/16", "10.0.1.2"),),
                (Service("http", 80, 8080, HTTP_CHECK),), WEB)
TCP_LB = LbSpec(8, "least_connections", "198.51.100.253", None, (),
                (Service("tcp", 5432, 5433, HealthCheck("tcp", 5433, 15, 10, 3), proxyprotocol=True),),
                (Target("ip-192.0.2.9", "192.0.2.9"), Target("server-2-2001:db8:0:2::1", "2001:db8:0:2::1")))
TLS_LB = LbSpec(9, "round_robin", "198.51.100.252", None, (),
                (Service("https", 443, 80, HealthCheck("http", 80, 10, 5, 3, status_codes=("2??",)),
                         sticky_sessions=True, cookie_name="SESSION", cookie_lifetime=600, timeout_idle=70,
                         redirect_http=True),), WEB)


def section(text: str, name: str) -> list[str]:
    """The lines of one section (sections are separated by blank lines)."""
    block = next(b for b in text.split("\n\n") if b.startswith(name + "\n"))
    return [line.strip() for line in block.splitlines()[1:]]


def test_http_service_with_http_health_check(tmp_path: Path) -> None:
    text = render_config(WEB_LB, tmp_path)
    assert f'stats socket "{tmp_path}/stats.sock" mode 600 level admin expose-fd listeners' in text
    assert section(text, "listen svc-80") == [
        "mode http",
        "bind 198.51.100.254:80",
        "bind ipv6@2001:db8:1b:1::1:80",
        "bind 10.0.1.2:80",  # the private IP too, as on Hetzner
        "balance roundrobin",
        "option forwardfor",
        "http-request set-header X-Forwarded-Proto http",
        "timeout http-keep-alive 50s",
        "option httpchk",
        'http-check send meth GET uri "/healthz" ver HTTP/1.1 hdr Host "example.org"',
        'http-check expect rstatus "^(200|3[0-9][0-9])\\$"',
        'http-check expect string "ok"',
        "default-server check port 8080 inter 3s fall 2 rise 2",
        "timeout check 2s",
        "server server-3-10.0.1.3 10.0.1.3:8080",
        "server server-4-10.0.1.4 10.0.1.4:8080",
    ]


def test_tcp_service_least_connections_proxy_protocol(tmp_path: Path) -> None:
    lines = section(render_config(TCP_LB, tmp_path), "listen svc-5432")
    assert lines == [
        "mode tcp",
        "bind 198.51.100.253:5432",
        "balance leastconn",
        # a tcp health check is a plain connect: no httpchk lines
        "default-server check port 5433 inter 15s fall 3 rise 3 send-proxy check-send-proxy",
        "timeout check 10s",
        "server ip-192.0.2.9 192.0.2.9:5433",
        "server server-2-2001:db8:0:2::1 ipv6@2001:db8:0:2::1:5433",
    ]


def test_https_terminates_with_a_certificate_sticky_and_redirect(tmp_path: Path) -> None:
    text = render_config(TLS_LB, tmp_path, tmp_path / "certificate.pem")
    lines = section(text, "listen svc-443")
    assert lines[:2] == ["mode http", f'bind 198.51.100.252:443 ssl crt "{tmp_path}/certificate.pem" alpn h2,http/1.1']
    assert "http-request set-header X-Forwarded-Proto https" in lines
    assert "timeout http-keep-alive 70s" in lines
    assert 'cookie "SESSION" insert indirect nocache maxlife 600s' in lines
    assert 'http-check send meth GET uri "/" ver HTTP/1.0' in lines  # no domain: no Host header
    servers = [line for line in lines if line.startswith("server ")]
    assert [s.split()[:3] for s in servers] == [["server", "server-3-10.0.1.3", "10.0.1.3:80"],
                                                ["server", "server-4-10.0.1.4", "10.0.1.4:80"]]
    assert all(" cookie " in s for s in servers) and servers[0].split()[-1] != servers[1].split()[-1]
    assert section(text, "frontend redirect-80") == ["mode http", "bind 198.51.100.252:80",
                                                     "http-request redirect scheme https code 301"]


def test_no_public_interface_listens_on_private_ips_only(tmp_path: Path) -> None:
    spec = LbSpec(3, "round_robin", None, None, (LbNic(1, "10.0.0.0/16", "10.0.1.5"),),
                  (Service("tcp", 22, 22, HealthCheck("tcp", 22, 15, 10, 3)),), ())
    lines = section(render_config(spec, tmp_path), "listen svc-22")
    assert [line for line in lines if line.startswith("bind")] == ["bind 10.0.1.5:22"]
    assert not [line for line in lines if line.startswith("server")]


def test_quoting_and_status_codes() -> None:
    assert quote('a "b" $HOME #x\n') == '"a \\"b\\" \\$HOME \\#x\\n"'
    assert status_regex(["200", "2??", "3*"]) == "^(200|2[0-9][0-9]|3[0-9]*)$"


STATS = """# pxname,svname,qcur,status,check_status,
svc-80,FRONTEND,,OPEN,,
svc-80,server-3-10.0.1.3,0,UP,L7OK,
svc-80,server-4-10.0.1.4,0,DOWN,L4CON,
svc-80,server-5-10.0.1.5,0,UP,INI,
svc-80,server-6-10.0.1.6,0,UP 1/2,L7STS,
svc-80,server-7-10.0.1.7,0,DOWN 1/2,L7OK,
svc-80,BACKEND,0,UP,,
redirect-80,FRONTEND,,OPEN,,
"""


def test_health_from_stats() -> None:
    assert parse_stats(STATS) == {80: {
        "server-3-10.0.1.3": "healthy",
        "server-4-10.0.1.4": "unhealthy",
        "server-5-10.0.1.5": "unknown",  # not checked yet
        "server-6-10.0.1.6": "healthy",  # going down, still served
        "server-7-10.0.1.7": "unhealthy",  # coming back, not yet served
    }}
    assert parse_stats("") == {}


@pytest.mark.skipif(shutil.which("haproxy") is None and not Path("/usr/sbin/haproxy").exists(),
                    reason="haproxy is not installed (scripts/hosts-deps.sh)")
@pytest.mark.parametrize("spec", [WEB_LB, TCP_LB, TLS_LB, LbSpec(1)], ids=["http", "tcp", "https", "empty"])
def test_haproxy_accepts_the_configuration(spec: LbSpec, tmp_path: Path) -> None:
    cert = None
    if any(s.protocol == "https" for s in spec.services):
        if shutil.which("openssl") is None:
            pytest.skip("openssl is not installed")
        cert = tmp_path / "certificate.pem"
        make_certificate(cert, "lb.localcloud", spec.addresses)
    path = tmp_path / "haproxy.cfg"
    path.write_text(render_config(spec, tmp_path, cert))
    haproxy = shutil.which("haproxy") or "/usr/sbin/haproxy"
    proc = subprocess.run([haproxy, "-c", "-q", "-f", str(path)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
