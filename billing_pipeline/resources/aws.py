"""AwsClients: the boto3 clients the output assets call (Cost Explorer, the usage table in DynamoDB), configured
as dagster-aws configures its own (region, endpoint, profile, retries). Unset fields fall back to the standard AWS
environment when the run starts: AWS_REGION (or AWS_DEFAULT_REGION, else us-east-1), AWS_ENDPOINT_URL and the
credentials chain."""

from __future__ import annotations

import os

import boto3
from dagster_aws.utils import ResourceWithBoto3Configuration, construct_boto_client_retry_config

DEFAULT_REGION = "us-east-1"


class AwsClients(ResourceWithBoto3Configuration):
    def region(self) -> str:
        return self.region_name or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or DEFAULT_REGION

    def _session(self) -> boto3.session.Session:
        return boto3.session.Session(profile_name=self.profile_name, aws_access_key_id=self.aws_access_key_id,
                                     aws_secret_access_key=self.aws_secret_access_key,
                                     aws_session_token=self.aws_session_token)

    def _settings(self) -> dict:
        return {"region_name": self.region(), "endpoint_url": self.endpoint_url, "use_ssl": self.use_ssl,
                "verify": self.verify, "config": construct_boto_client_retry_config(self.max_attempts)}

    def client(self, service: str):
        """A boto3 client of `service` (e.g. "ce")."""
        return self._session().client(service, **self._settings())

    def dynamodb_table(self, name: str):
        """The DynamoDB table `name` as a boto3 resource (conditions and Python values, not wire types)."""
        return self._session().resource("dynamodb", **self._settings()).Table(name)
