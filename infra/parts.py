"""Parts every construct of the engine shares: the Lambda asset, prop checks, the
on-failure destination, alarm plumbing and cdk-nag acknowledgements.

``StreamAggregator`` and its sibling constructs (other sources, other pipelines) build
their functions, dead-letter queues and alarm topics from these, so a secure default
or a check exists once.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Sequence
from typing import Any

import jsii
from aws_cdk import (
    Acknowledgment,
    ArnFormat,
    Duration,
    RemovalPolicy,
    Stack,
    Token,
    Validations,
)
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_sqs as sqs
from constructs import Construct

RUNTIME = lambda_.Runtime.PYTHON_3_14
"""The newest Python runtime aws-cdk-lib 2.275 knows."""
LOGGING_FORMAT = lambda_.LoggingFormat.TEXT
"""Text format keeps the handlers' own JSON lines and EMF lines intact (see
:mod:`infra.stream_aggregator`)."""
S3_ACCESS_LOGS_USE_BUCKET_POLICY = "@aws-cdk/aws-s3:serverAccessLogsUseBucketPolicy"
DASHBOARD_NAME = re.compile(r"[A-Za-z0-9_-]{1,255}")
EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
DLQ_RETENTION = Duration.days(14)
"""The longest SQS allows: time to notice, investigate and replay a failed batch."""


def check_emails(emails: Sequence[str], alarm_topic: sns.ITopic | None) -> None:
    if alarm_topic is not None and emails:
        raise ValueError(
            "alarm_topic and alarm_emails are mutually exclusive: the construct "
            "subscribes e-mails only to the topic it creates; subscribe them to your "
            "own topic yourself"
        )
    for email in emails:
        if not isinstance(email, str) or not EMAIL.fullmatch(email):
            raise ValueError(f"alarm_emails: {email!r} is not an e-mail address")


def alarm_name_prefix(scope: Construct, given: str | None, construct_id: str) -> str:
    """``given`` checked, or ``{stack name}-{construct_id}``."""
    if given is not None:
        if not given or Token.is_unresolved(given) or len(given) > 200:
            raise ValueError(
                f"alarm_name_prefix must be a plain string of 1 to 200 characters, "
                f"got {given!r}"
            )
        return given
    stack_name = Stack.of(scope).stack_name
    if Token.is_unresolved(stack_name):
        raise ValueError(
            "the stack name is not known at synth: pass alarm_name_prefix so the "
            "alarm names are stable"
        )
    return f"{stack_name}-{construct_id}"


def encryption_key(scope: Construct, description: str) -> kms.Key:
    """A rotated, retained key for a construct's queue and topic."""
    return kms.Key(scope, "Key", description=description, enable_key_rotation=True,
                   removal_policy=RemovalPolicy.RETAIN)


def dead_letter_queue(scope: Construct, key: kms.IKey, *, purpose: str,
                      construct_id: str = "DeadLetterQueue") -> sqs.Queue:
    """A KMS-encrypted, SSL-only queue kept 14 days and retained with its stack: a message
    there is the only record of which range failed, so deleting the stack must not delete
    it. ``purpose`` explains why the queue has no DLQ of its own."""
    queue = sqs.Queue(scope, construct_id, encryption=sqs.QueueEncryption.KMS,
                      encryption_master_key=key, enforce_ssl=True,
                      retention_period=DLQ_RETENTION, removal_policy=RemovalPolicy.RETAIN)
    Validations.of(queue).acknowledge(Acknowledgment(id="AwsSolutions-SQS3", reason=purpose))
    return queue


def alarm_topic(scope: Construct, key: kms.Key, emails: Sequence[str], *,
                display_name: str, alarm_name_prefix: str) -> sns.Topic:
    """An SSL-only topic under ``key``, to which the construct's alarms may publish."""
    topic = sns.Topic(scope, "AlarmTopic", display_name=display_name, master_key=key,
                      enforce_ssl=True)
    allow_alarms_to_publish(topic, alarm_name_prefix)
    # CloudWatch publishes alarm notifications with its own service principal; an
    # encrypted topic needs it to be allowed to use the key (an AWS-managed SNS key
    # cannot grant that, hence the construct's own key).
    key.add_to_resource_policy(iam.PolicyStatement(
        sid="AllowCloudWatchAlarmsToPublish",
        principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
        actions=["kms:Decrypt", "kms:GenerateDataKey"],
        resources=["*"],
        conditions={"StringEquals": {"aws:SourceAccount": Stack.of(scope).account}},
    ))
    for email in emails:
        topic.add_subscription(subscriptions.EmailSubscription(email))
    return topic


def allow_alarms_to_publish(topic: sns.ITopic, alarm_name_prefix: str) -> None:
    """Let CloudWatch publish this construct's alarms (``{prefix}-*``) to ``topic``.

    A topic policy replaces SNS's default policy, and the one ``enforce_ssl`` writes holds
    only the deny of plain HTTP: without this statement CloudWatch's publish is refused
    ("not authorized to perform SNS:Publish") and no alarm reaches anyone. The statement
    is scoped to this account and to the alarms' ARNs. For a topic of the same app it is
    added to that topic's policy; an imported topic's policy is its owner's to extend
    (the README says what to allow).
    """
    stack = Stack.of(topic)
    topic.add_to_resource_policy(iam.PolicyStatement(
        sid=f"AllowAlarms{_sid(alarm_name_prefix)}",
        principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
        actions=["sns:Publish"],
        resources=[topic.topic_arn],
        conditions={
            "StringEquals": {"aws:SourceAccount": stack.account},
            "ArnLike": {"aws:SourceArn": stack.format_arn(
                service="cloudwatch", resource="alarm",
                resource_name=f"{alarm_name_prefix}-*",
                arn_format=ArnFormat.COLON_RESOURCE_NAME)},
        },
    ))


def _sid(text: str) -> str:
    """A statement id from ``text`` (SNS allows letters and digits only)."""
    return "".join(c for c in text.title() if c.isalnum())[:100] or "Construct"


def acknowledge_wildcard(role: iam.IRole, resource: str, reason: str) -> None:
    """Acknowledge cdk-nag's IAM5 finding for one wildcard resource of ``role``."""
    rendered = nag_resource(Stack.of(role).resolve(resource))
    if rendered is not None:
        Validations.of(role).acknowledge(Acknowledgment(
            id=f"AwsSolutions-IAM5[Resource::{rendered}]", reason=reason
        ))


def require_stream(table: dynamodb.ITable, *, prop: str, needs: str) -> str:
    """The table's stream ARN; a stream without old and new images fails synth.

    Only a table defined in this app shows its view type; an imported one is trusted.
    ``needs`` says why both images are needed, in the error.
    """
    stream_arn = table.table_stream_arn
    if not stream_arn:
        raise ValueError(
            f"{prop} has no stream: enable stream=NEW_AND_OLD_IMAGES on {table.node.path}")
    spec = getattr(table.node.default_child, "stream_specification", None)
    view = getattr(spec, "stream_view_type", None)
    if isinstance(view, str) and view != "NEW_AND_OLD_IMAGES":
        raise ValueError(f"{prop} stream view type is {view}: enable "
                         f"stream=NEW_AND_OLD_IMAGES ({needs})")
    return stream_arn


def dashboard_name(given: str | None, prefix: str) -> str:
    name = given if given is not None else re.sub(r"[^A-Za-z0-9_-]", "-", prefix)
    if not DASHBOARD_NAME.fullmatch(name):
        raise ValueError(
            f"dashboard_name must be 1 to 255 letters, digits, '-' or '_', got {name!r}"
        )
    return name


@jsii.implements(lambda_.IEventSourceDlq)
class SqsOnFailureDestination:
    """An SQS on-failure destination granting only what sending to it needs.

    CDK's ``SqsDlq`` grants ``sqs:GetQueueAttributes``/``GetQueueUrl`` and, for a
    KMS-encrypted queue, ``kms:Encrypt``, ``kms:ReEncrypt*`` and ``kms:GenerateDataKey*``.
    The mapping only sends: ``sqs:SendMessage`` on the queue, plus ``kms:GenerateDataKey``
    and ``kms:Decrypt`` on its key.
    """

    def __init__(self, queue: sqs.IQueue) -> None:
        self.queue = queue

    def bind(
        self, target: lambda_.IEventSourceMapping, target_handler: lambda_.IFunction
    ) -> lambda_.DlqDestinationConfig:
        iam.Grant.add_to_principal(
            grantee=target_handler, actions=["sqs:SendMessage"],
            resource_arns=[self.queue.queue_arn],
        )
        key = self.queue.encryption_master_key
        if key is not None:
            key.grant(target_handler, "kms:GenerateDataKey", "kms:Decrypt")
        return lambda_.DlqDestinationConfig(destination=self.queue.queue_arn)


def nag_resource(resolved: object) -> str | None:
    """A resolved ARN as cdk-nag writes it in a finding id (``<Logical.Arn>/audit/*``).

    None for shapes this does not know; the finding then stays visible, unacknowledged.
    """
    if isinstance(resolved, str):
        return resolved
    if not isinstance(resolved, dict) or len(resolved) != 1:
        return None
    ((fn, arg),) = resolved.items()
    if fn == "Ref" and isinstance(arg, str):
        return f"<{arg}>"
    if fn == "Fn::GetAtt" and isinstance(arg, list):
        return "<" + ".".join(str(a) for a in arg) + ">"
    if fn == "Fn::Join" and isinstance(arg, list) and arg[0] == "":
        parts = [nag_resource(part) for part in arg[1]]
        return None if None in parts else "".join(p for p in parts if p is not None)
    return None


def struct_kwargs(struct: object | None) -> dict[str, Any]:
    """The properties a jsii struct was given, as keyword arguments."""
    if struct is None:
        return {}
    names = [p for p in inspect.signature(type(struct).__init__).parameters if p != "self"]
    values = {name: getattr(struct, name) for name in names}
    return {name: value for name, value in values.items() if value is not None}


def check_range(name: str, value: int, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"{name} must be a whole number from {low} to {high}, got {value!r}")


def check_seconds(name: str, value: Duration, low: int, high: int) -> None:
    if value.is_unresolved():
        return
    seconds = value.to_seconds()
    if not low <= seconds <= high:
        raise ValueError(f"{name} must be from {low} to {high} seconds, got {seconds}")


