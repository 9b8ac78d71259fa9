#!/usr/bin/env python3
"""Runs the workspace's Rust test binaries, the hub suites again on PostgreSQL and the other
suites it is given, several at a time; then the doc tests.

`cargo test` runs one test binary after another. Most of them wait on fsync, child processes
and loopback sockets, so the machine's cores sat idle a third of the time; here up to `--jobs`
binaries run together, the longest first: by the times of the previous run, kept in the target
directory, or on a cold cache by those of a reference run (`scripts/test-times.json`). Each
binary runs as `cargo test` runs it: from its package's directory, with `CARGO_MANIFEST_DIR`
set; a package's integration test binary runs one job per module (`suites_of`). Each job's
output is printed whole when it ends, so that outputs never mix, and the `test result:` lines
scripts/test.sh counts are those of libtest itself.

Other suites can join the same pool (`--suite LABEL=COMMAND`, run from the project's root):
the bindings' and the browser's suites wait on a JVM, Chromium and a hub as much as on a core,
and side by side with the test binaries they fill the cores those leave idle.

usage: run-tests.py [--jobs N] [--postgres SUITE[,SUITE...]] [--suite LABEL=COMMAND ...]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time

# The test scripts' one shared build (its flags are there).
WORKSPACE_BUILD = os.path.join(os.path.dirname(os.path.abspath(__file__)), "build-workspace.sh")


def test_binaries():
    """(target, kind, executable, package dir) of every test binary, built first."""
    # `cargo test --no-run` builds the same test targets, but not the binaries themselves
    # (the hub, uniffi-bindgen and libvigie, which the bindings' and browser scripts then take
    # from this build).
    build = subprocess.run(
        [WORKSPACE_BUILD, "--message-format=json-render-diagnostics"],
        stdout=subprocess.PIPE, check=False, text=True)
    if build.returncode != 0:
        sys.exit("the test build failed")
    found = []
    for line in build.stdout.splitlines():
        message = json.loads(line)
        if message.get("reason") != "compiler-artifact" or not message.get("executable"):
            continue
        if not message["profile"]["test"]:
            continue
        target = message["target"]
        package_dir = os.path.dirname(message["manifest_path"])
        found.append((target["name"], target["kind"][0], message["executable"], package_dir))
    return found


def suites_of(executable, name, package_dir):
    """(label, libtest arguments) of each suite of an integration test binary.

    A package's integration tests are one binary whose files are modules (`tests/integration.rs`):
    one compile of the shared helpers and one link, instead of one per file. Each module still
    runs as a job of its own, in a process of its own, under its own name: the pool spreads them
    as it spread the binaries, and no suite shares a process (a panic hook, an environment)
    with another. Tests outside any module run under the binary's name."""
    listed = subprocess.run([executable, "--list", "--format", "terse"], cwd=package_dir,
                            stdout=subprocess.PIPE, text=True, check=True)
    modules = {}
    for line in listed.stdout.splitlines():
        test, _, kind = line.rpartition(": ")
        if kind != "test":
            continue
        module, inside, _ = test.partition("::")
        modules.setdefault(module if inside else name, []).append(test)
    if not modules or list(modules) == [name]:
        return [(name, [])]
    return [(label, ["--exact", *tests]) for label, tests in sorted(modules.items())]


def main():
    parser = argparse.ArgumentParser()
    # One more than the cores: binaries waiting on fsync or sockets leave a core free (on 2
    # cores, 3 at a time took 126 s where 2 took 143 s and one at a time 204 s).
    parser.add_argument("--jobs", type=int, default=(os.cpu_count() or 2) + 1)
    parser.add_argument("--postgres", default="",
                        help="integration suites to run again with VIGIE_TEST_BACKEND=postgres")
    parser.add_argument("--suite", action="append", default=[], metavar="LABEL=COMMAND",
                        help="another suite for the pool: a command run from the project's root")
    args = parser.parse_args()
    again = set(filter(None, args.postgres.split(",")))

    jobs = []
    building = time.monotonic()
    binaries = test_binaries()
    print(f"== the test build took {time.monotonic() - building:.0f} s", flush=True)
    for name, kind, executable, package_dir in binaries:
        env = {"CARGO_MANIFEST_DIR": package_dir}
        if kind == "test":
            runs = suites_of(executable, name, package_dir)
        else:
            runs = [(f"{name} ({kind})", [])]
        for label, filters in runs:
            if any(job[0] == label for job in jobs):
                sys.exit(f"two suites named {label}")
            jobs.append((label, [executable, *filters], package_dir, env))
            if label in again:
                jobs.append((f"{label} on PostgreSQL", [executable, *filters], package_dir,
                             dict(env, VIGIE_TEST_BACKEND="postgres")))
                again.discard(label)
    if again:
        sys.exit(f"no suite named {', '.join(sorted(again))}")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    for suite in args.suite:
        label, _, command = suite.partition("=")
        if not label or not command:
            sys.exit(f"--suite wants LABEL=COMMAND, not {suite!r}")
        jobs.append((label, ["bash", "-c", command], root, {}))

    times_path = os.path.join(os.environ.get("CARGO_TARGET_DIR", "target"), "test-times.json")
    # On a cold cache, the times of a reference run kept beside this script.
    seed_path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "test-times.json")
    previous = {}
    for path in (times_path, seed_path):
        try:
            with open(path) as f:
                previous = json.load(f)
            break
        except (OSError, ValueError):
            continue
    # Longest first; a binary never timed goes first too, in case it is long.
    jobs.sort(key=lambda job: -previous.get(job[0], 1e9))

    lock = threading.Lock()
    pending = list(jobs)
    failed = []
    times = {}

    def worker():
        while True:
            with lock:
                if not pending:
                    return
                label, argv, cwd, extra = pending.pop(0)
            env = dict(os.environ, **extra)
            started = time.monotonic()
            with tempfile.TemporaryFile() as output:
                child = subprocess.Popen(argv, cwd=cwd, env=env,
                                         stdout=output, stderr=subprocess.STDOUT)
                # wait4 gives the CPU time of this job alone (its children included), which
                # says which jobs fill the cores rather than wait on them.
                _, status, usage = os.wait4(child.pid, 0)
                child.returncode = os.waitstatus_to_exitcode(status)
                output.seek(0)
                printed = output.read()
            took = time.monotonic() - started
            cpu = usage.ru_utime + usage.ru_stime
            with lock:
                times[label] = took
                print(f"== {label}: {' '.join(argv)} ({took:.1f} s, {cpu:.1f} s CPU)",
                      flush=True)
                sys.stdout.buffer.write(printed)
                sys.stdout.flush()
                if child.returncode != 0:
                    failed.append(label)

    started = time.monotonic()
    threads = [threading.Thread(target=worker) for _ in range(max(1, args.jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print(f"== {len(jobs)} test binaries and suites in {time.monotonic() - started:.0f} s, "
          f"{args.jobs} at a time", flush=True)
    try:
        with open(times_path, "w") as f:
            json.dump(times, f, indent=1, sort_keys=True)
    except OSError:
        pass
    if failed:
        sys.exit("failed: " + ", ".join(failed))

    # Doc tests are rustdoc's to build and run.
    started = time.monotonic()
    doc = subprocess.run([WORKSPACE_BUILD, "--doc-tests"], check=False)
    if doc.returncode != 0:
        sys.exit("doc tests failed")
    print(f"== doc tests in {time.monotonic() - started:.0f} s", flush=True)


if __name__ == "__main__":
    main()
