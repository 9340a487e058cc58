"""S3 access of the operators: the amazon provider's S3Hook with the provider's default retries."""

from __future__ import annotations

from airflow.providers.amazon.aws.hooks.s3 import S3Hook
from botocore.config import Config

from airflow_distmap.hooks.distributed_map import with_default_retries


class DistributedMapS3Hook(S3Hook):
    """:class:`~airflow.providers.amazon.aws.hooks.s3.S3Hook` retrying as the Step Functions hook does.

    botocore's default for S3 is five attempts in legacy mode, which a burst of ``SlowDown`` answers (many
    backfill tasks on one prefix) outlasts; unless ``botocore_config`` or the connection set ``retries``, this
    hook uses :data:`~airflow_distmap.hooks.distributed_map.DEFAULT_RETRIES` (standard mode, 10 attempts).
    Arguments are those of ``S3Hook``.
    """

    @property
    def config(self) -> Config:
        """The botocore configuration, with the default retries when nothing configured retries."""
        return with_default_retries(super().config)
