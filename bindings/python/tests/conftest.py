"""What scripts/test-bindings.sh passes: a real hub on 127.0.0.1 and its users, whose devices the
tests enrol."""

import functools
import os
import subprocess
import uuid

import pytest

import vigie


def _env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        pytest.exit(f"{name} is not set: run scripts/test-bindings.sh", returncode=2)
    return value


class Env:
    """The hub, and devices of its users enrolled for one test: the hub binds a device's keys at
    its first sync, so every store that syncs needs a device of its own (each test gets a new
    ``Env``, and each token below is enrolled on first use)."""

    @property
    def hub_url(self) -> str:
        return _env("VIGIE_HUB_URL")

    @functools.cached_property
    def monitor_token(self) -> str:
        """A device of a community monitor of CI-R1-D1-C01."""
        return self.enrol(_env("VIGIE_MONITOR_USER"))

    @functools.cached_property
    def quickstart_token(self) -> str:
        """Another device of the same monitor."""
        return self.enrol(_env("VIGIE_MONITOR_USER"))

    @functools.cached_property
    def supervisor_token(self) -> str:
        """A device of a supervisor of region CI-R1."""
        return self.enrol(_env("VIGIE_SUPERVISOR_USER"))

    @functools.cached_property
    def revoked_token(self) -> str:
        """A device of the monitor that the hub has revoked."""
        token = self.enrol(_env("VIGIE_MONITOR_USER"))
        self.admin("device", "revoke", "--device", vigie.parse_enrolment_token(token).device_id)
        return token

    def enrol(self, user: str) -> str:
        """A new device of `user`: its enrolment token."""
        return self.admin("device", "enrol", "--user", user)

    def admin(self, *args: str) -> str:
        """Runs ``vigie <args> --data <the hub's data>`` (the hub keeps running); returns its
        output."""
        out = subprocess.run(
            [_env("VIGIE_BIN"), *args, "--data", _env("VIGIE_HUB_DATA")],
            capture_output=True,
            text=True,
            check=False,
        )
        assert out.returncode == 0, out.stderr
        return out.stdout.strip()

    def store_path(self, name: str) -> str:
        directory = os.path.join(_env("VIGIE_TEST_DIR"), str(uuid.uuid4()))
        os.makedirs(directory)
        return os.path.join(directory, name)


@pytest.fixture
def env() -> Env:
    return Env()


def key(seed: int) -> bytes:
    """A 256-bit key, as a keystore would give one."""
    return bytes((seed * 31 + i) % 256 for i in range(32))


def new_id() -> str:
    return str(uuid.uuid4())


class Recorder(vigie.ChangeListener):
    """A change listener that keeps what it is told."""

    def __init__(self):
        self.changes = []
        self.bulk = []

    def on_change(self, change):
        self.changes.append(change)

    def on_bulk_change(self, source, records):
        self.bulk.append((source, records))


def as_role(store, role, areas=("CI-R1",)):
    """The store acting as `role` (as the hub tells a device at a sync), through the library's
    test hook: for the tests of the workflow without a hub."""
    store.debug_assume_role(role, list(areas))
    return store


def open_enrolled(path, seed, token):
    """The store of the device an enrolment token names."""
    me = vigie.parse_enrolment_token(token)
    return vigie.open_store(path, key(seed), me.user_id, me.device_id)


def synced(store, env, token):
    """The store once synced with the hub: enrolled (its certificate, the directory of the
    other devices), as bundles and peers need."""
    store.sync_with(vigie.HubTransport(env.hub_url, token), None)
    return store
