"""A real S3 server for the tests: moto's, in server mode on a free loopback port, plus a fresh bucket per test.

Test modules load these fixtures with `pytest_plugins = ["tests._s3"]`. `s3_env` points the test process at the
server (only through `FLYTE_CELERY_STORAGE_*` variables and `init_from_config()`, with every AWS variable and file
that botocore could also read taken out of the picture); `S3Server.env()` is the same environment for workers.

PYTEST_DONT_REWRITE: test modules import helpers from here before pytest loads it as their plugin, and pytest refuses
(with a warning, an error here) to rewrite the asserts of a module already imported. It has none to rewrite.
"""

from __future__ import annotations

import logging
import os
import secrets
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests._services import SERVICE_START_DEADLINE_S, port_open, wait_until

HOST = "127.0.0.1"
ACCESS_KEY = "flyte-celery-tests"
SECRET_KEY = "flyte-celery-tests-secret"
REGION = "us-east-1"
SERVER_STOP_DEADLINE_S = 10.0
# Everything botocore reads besides what we pass it: a test's outcome must not depend on the machine's AWS setup.
AWS_VARIABLES = (
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_DEFAULT_REGION",
    "AWS_REGION",
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_ROLE_ARN",
)
STORAGE_VARIABLES = (
    "FLYTE_CELERY_STORAGE_ENDPOINT_URL",
    "FLYTE_CELERY_STORAGE_ACCESS_KEY_ID",
    "FLYTE_CELERY_STORAGE_SECRET_ACCESS_KEY",
    "FLYTE_CELERY_STORAGE_REGION",
    "FLYTE_CELERY_STORAGE_ANONYMOUS",
    "FLYTE_CELERY_STORAGE_CONNECT_TIMEOUT_S",
    "FLYTE_CELERY_STORAGE_READ_TIMEOUT_S",
    "FLYTE_CELERY_STORAGE_MAX_ATTEMPTS",
)


@dataclass(frozen=True)
class S3Server:
    """A running S3 server."""

    endpoint: str

    def env(self) -> dict[str, str]:
        """The `FLYTE_CELERY_STORAGE_*` variables that point a client or a worker at this server."""
        return {
            "FLYTE_CELERY_STORAGE_ENDPOINT_URL": self.endpoint,
            "FLYTE_CELERY_STORAGE_ACCESS_KEY_ID": ACCESS_KEY,
            "FLYTE_CELERY_STORAGE_SECRET_ACCESS_KEY": SECRET_KEY,
            "FLYTE_CELERY_STORAGE_REGION": REGION,
            **isolated_aws_env(),
        }

    def client(self) -> Any:
        """A boto3 client of its own (not the code under test) for setting up and checking buckets."""
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            region_name=REGION,
        )


def isolated_aws_env() -> dict[str, str]:
    """Variables that keep botocore from reading the machine's AWS files or asking an instance-metadata service."""
    return {
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_EC2_METADATA_DISABLED": "true",
    }


def free_port() -> int:
    """A loopback port nothing listens on (it was free a moment ago; connecting to it is refused)."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def make_bucket(server: S3Server) -> str:
    name = f"flyte-celery-{secrets.token_hex(6)}"
    server.client().create_bucket(Bucket=name)
    return name


def drop_bucket(server: S3Server, name: str) -> None:
    client = server.client()
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=name):
        for item in page.get("Contents", []):
            client.delete_object(Bucket=name, Key=item["Key"])
    client.delete_bucket(Bucket=name)


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """moto's S3 server on a free loopback port of this process, for the whole session."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one access-log line per request otherwise
    server = ThreadedMotoServer(ip_address=HOST, port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    wait_until(lambda: port_open(host, port), SERVICE_START_DEADLINE_S, f"moto's S3 server on {host}:{port}")
    try:
        yield S3Server(f"http://{host}:{port}")
    finally:
        server.stop()


@pytest.fixture
def s3_bucket(s3_server: S3Server) -> Iterator[str]:
    """A new, empty bucket on the session's server; deleted with its objects afterwards."""
    name = make_bucket(s3_server)
    try:
        yield name
    finally:
        drop_bucket(s3_server, name)


@pytest.fixture
def s3_env(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> Iterator[S3Server]:
    """This process points at the server through `FLYTE_CELERY_STORAGE_*` variables only; restored afterwards."""
    import flyte_celery as flyte

    for name in (*AWS_VARIABLES, *STORAGE_VARIABLES):
        monkeypatch.delenv(name, raising=False)
    for name, value in s3_server.env().items():
        monkeypatch.setenv(name, value)
    flyte.init_from_config()
    yield s3_server
    monkeypatch.undo()
    flyte.init_from_config()


@dataclass(frozen=True)
class AuthS3Server(S3Server):
    """An S3 server that checks signatures, with the keys of a user who may do nothing."""

    powerless_key: str
    powerless_secret: str


# moto lets this many requests through unauthenticated: the two IAM calls that create the powerless user.
UNAUTHENTICATED_SETUP_REQUESTS = 2


@pytest.fixture(scope="module")
def s3_auth_server() -> Iterator[AuthS3Server]:
    """A second moto server, in a process of its own, that checks signatures: unknown access keys are refused, and
    a user without policies is denied.

    Its own process because moto's authentication switch is process-wide and would change the shared server.
    """
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", HOST, "-p", str(port)],
        env={**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": str(UNAUTHENTICATED_SETUP_REQUESTS)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:

        def up() -> bool:
            if process.poll() is not None:
                raise AssertionError(f"moto.server exited with {process.returncode}")
            return port_open(HOST, port)

        wait_until(up, SERVICE_START_DEADLINE_S, f"moto.server (authenticating) on {HOST}:{port}")
        endpoint = f"http://{HOST}:{port}"
        import boto3

        iam = boto3.client(
            "iam",
            endpoint_url=endpoint,
            aws_access_key_id="setup",
            aws_secret_access_key="setup",
            region_name=REGION,
        )
        iam.create_user(UserName="powerless")
        key = iam.create_access_key(UserName="powerless")["AccessKey"]
        yield AuthS3Server(endpoint, key["AccessKeyId"], key["SecretAccessKey"])
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=SERVER_STOP_DEADLINE_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=SERVER_STOP_DEADLINE_S)
