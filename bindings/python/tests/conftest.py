"""What scripts/test-bindings.sh passes: a real hub on 127.0.0.1 and enrolment tokens."""

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
    @property
    def hub_url(self) -> str:
        return _env("VIGIE_HUB_URL")

    @property
    def monitor_token(self) -> str:
        """A community monitor of CI-R1-D1-C01."""
        return _env("VIGIE_MONITOR_TOKEN")

    @property
    def quickstart_token(self) -> str:
        """Another device of the same monitor."""
        return _env("VIGIE_QUICKSTART_TOKEN")

    @property
    def supervisor_token(self) -> str:
        """A supervisor of region CI-R1."""
        return _env("VIGIE_SUPERVISOR_TOKEN")

    @property
    def revoked_token(self) -> str:
        """A device of the monitor that the hub has revoked."""
        return _env("VIGIE_REVOKED_TOKEN")

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
