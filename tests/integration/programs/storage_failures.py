"""Programs for the storage failure tests: a task that takes its run's bucket away before returning an output too
big to travel inline, so that only the write of its outcome can fail."""

from __future__ import annotations

import boto3

import flyte_celery as flyte

env = flyte.TaskEnvironment("storage_failures")


@env.task
async def drop_bucket_then_return(endpoint: str, key: str, secret: str, bucket: str, size: int) -> bytes:
    client = boto3.client(
        "s3", endpoint_url=endpoint, aws_access_key_id=key, aws_secret_access_key=secret, region_name="us-east-1"
    )
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for item in page.get("Contents", []):
            client.delete_object(Bucket=bucket, Key=item["Key"])
    client.delete_bucket(Bucket=bucket)
    return b"x" * size
