"""Records in transit: a hub serving TLS itself, reached by ``HubTransport`` trusting its
authority, and the refusal of an http:// hub elsewhere (records and the token in clear)."""

import pathlib
import subprocess

import pytest

import vigie
from conftest import _env, open_enrolled

ROOT = pathlib.Path(__file__).resolve().parents[3]
TLS = ROOT / "server" / "tests" / "fixtures" / "tls"
AREA = vigie.Area(country="CI", region="CI-R1", district="CI-R1-D1", community="CI-R1-D1-C01")


@pytest.fixture
def tls_hub(tmp_path):
    """A hub of its own on 127.0.0.1 with the test certificate, and a monitor's token."""
    data = tmp_path / "hub"
    run = lambda *args: subprocess.run(  # noqa: E731
        [_env("VIGIE_BIN"), *args, "--data", str(data)],
        capture_output=True, text=True, check=True,
    ).stdout.strip()
    run("reference", "publish", str(ROOT / "reference" / "areas-CI.json"))
    user = run("user", "add", "--name", "Awa Koné", "--role", "community-monitor",
               "--area", "CI-R1-D1-C01")
    token = run("device", "enrol", "--user", user)
    hub = subprocess.Popen(
        [_env("VIGIE_BIN"), "serve", "--data", str(data), "--listen", "127.0.0.1:0",
         "--tls-cert", str(TLS / "hub.pem"), "--tls-key", str(TLS / "hub.key")],
        stdout=subprocess.PIPE, stderr=open(tmp_path / "hub.log", "w"), text=True,
    )
    try:
        line = hub.stdout.readline().strip()
        assert line.startswith("vigie hub listening on https://127.0.0.1:"), line
        yield line.removeprefix("vigie hub listening on "), token
    finally:
        hub.terminate()
        hub.wait(timeout=30)


def test_a_hub_serving_tls_is_reached_trusting_its_authority(tls_hub, env):
    url, token = tls_hub
    me = vigie.parse_enrolment_token(token)
    with open_enrolled(env.store_path("phone.db"), 21, token) as phone:
        child = vigie.new_child_case("CI-D1-0101", "Aya Kouassi", vigie.Sex.FEMALE, AREA,
                                     "2026-03-02", me.user_id)
        child.estimated_age = 11
        phone.create_child_case(child)
        # The public authorities do not vouch for the test hub: nothing is sent.
        with pytest.raises(vigie.VigieError):
            phone.sync_with(vigie.HubTransport(url, token), None)
        with pytest.raises(vigie.VigieError):
            phone.sync_with(vigie.HubTransport(url, token, cafile=str(TLS / "other-ca.pem")), None)
        summary = phone.sync_with(vigie.HubTransport(url, token, cafile=str(TLS / "ca.pem")), None)
        assert summary.accepted == 1 and summary.refused == []


def test_an_http_hub_elsewhere_is_refused_before_anything_is_sent(env):
    for url in ["http://192.0.2.10:8470", "http://vigie.example.org/", "http://10.0.0.5"]:
        with pytest.raises(ValueError) as refused:
            vigie.HubTransport(url, env.monitor_token)
        assert "https://" in str(refused.value) and env.monitor_token not in str(refused.value)
    # The machine's own hub, or a closed network when the app insists.
    for url in ["http://127.0.0.1:8470", "http://localhost:8470", "http://[::1]:8470",
                "https://vigie.example.org"]:
        vigie.HubTransport(url, env.monitor_token)
    vigie.HubTransport("http://10.0.0.5", env.monitor_token, allow_cleartext=True)
