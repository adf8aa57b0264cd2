"""``cdk deploy``, against moto: publish a synthesized stack's assets, create the stack.

What it does, in the order the CDK CLI does it:

1. reads ``<stack>.assets.json`` from the cloud assembly; zips each directory asset
   (or takes each file asset as it is) and uploads it to its destination bucket and
   key, creating the bootstrap bucket in moto when it is missing;
2. creates the SSM parameter ``cdk bootstrap`` would have created for the template's
   ``BootstrapVersion`` parameter;
3. ``CreateStack`` with the template body, then waits for ``CREATE_COMPLETE``, and
   raises :class:`DeployError` with moto's failure reasons otherwise.

One deliberate difference: **event source mappings are not deployed**. With moto 5.2.1
a mapping on a table's stream (1) tries to run the function in Docker on every write
to the table, (2) empties the stream's shard whenever that attempt returns anything,
so ``GetRecords`` sees nothing, and (3) cannot be removed: ``DeleteEventSourceMapping``
forgets the mapping but the table keeps calling it. Our own local event source mapping
drives the handler instead, so each mapping is taken out of the template and returned
in :attr:`DeployedStack.event_source_mappings` with its properties resolved to the
deployed resources (stream ARN, function name, DLQ ARN, batch size, ...).

moto also skips some resource types without failing (bucket and queue policies, CDK
metadata); they are listed in :attr:`DeployedStack.skipped_resources`.
"""

from __future__ import annotations

import io
import json
import re
import time
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError
from botocore.parsers import ResponseParserError

from local_aws.server import FAKE_ACCOUNT_ID, FAKE_REGION, client

ESM_TYPE = "AWS::Lambda::EventSourceMapping"
BOOTSTRAP_VERSION = "30"
"""The bootstrap stack version written to SSM; the template's rule checks only >= 6."""
_CAPABILITIES = ["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND"]
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)
_PLACEHOLDER = re.compile(r"\$\{AWS::(AccountId|Region|Partition)\}")


class DeployError(RuntimeError):
    """The stack could not be deployed into moto; the message says why."""


@dataclass(frozen=True)
class EventSourceMappingSpec:
    """An event source mapping of the template, resolved against the deployed stack."""

    logical_id: str
    properties: dict[str, Any]
    """The template's ``Properties``, with every ``Ref``/``Fn::*`` replaced by its value."""

    @property
    def event_source_arn(self) -> str:
        return str(self.properties["EventSourceArn"])

    @property
    def function_name(self) -> str:
        return str(self.properties["FunctionName"])


@dataclass(frozen=True)
class DeployedStack:
    """What :func:`deploy_synthesized_stack` created."""

    stack_name: str
    stack_id: str
    outputs: dict[str, str]
    resources: dict[str, str]
    """Logical id to physical id, for every resource moto created."""
    resource_types: dict[str, str]
    """Logical id to resource type, for every resource moto created."""
    skipped_resources: dict[str, str] = field(default_factory=dict)
    """Logical id to type of the template's resources moto did not create."""
    event_source_mappings: tuple[EventSourceMappingSpec, ...] = ()
    """The mappings left out of the deployment (see the module docstring)."""

    def output(self, key: str) -> str:
        """One stack output, or KeyError naming the outputs there are."""
        try:
            return self.outputs[key]
        except KeyError:
            raise KeyError(f"stack has no output {key!r}; it has {sorted(self.outputs)}") from None

    @property
    def table_name(self) -> str:
        return self.output("TableName")

    @property
    def stream_arn(self) -> str:
        return self.output("TableStreamArn")

    @property
    def function_name(self) -> str:
        return self.output("FunctionName")

    @property
    def queue_url(self) -> str:
        return self.output("DeadLetterQueueUrl")

    @property
    def archive_bucket_name(self) -> str | None:
        """None when the stack was synthesized with archival off."""
        return self.outputs.get("ArchiveBucketName")


def deploy_synthesized_stack(
    cloud_assembly_dir: Path,
    stack_name: str,
    endpoint_url: str,
    *,
    timeout_seconds: float = 60.0,
) -> DeployedStack:
    """Publish the assets of ``stack_name`` from ``cloud_assembly_dir`` and create it in moto.

    Args:
        cloud_assembly_dir: the ``cdk.out`` directory of a finished synth.
        stack_name: the stack's artifact id (its ``<stack_name>.template.json``).
        endpoint_url: the moto server (see :class:`local_aws.MotoServer`).
        timeout_seconds: how long to wait for ``CREATE_COMPLETE``.

    Raises:
        DeployError: a file is missing, an asset cannot be published, or moto did not
            create the stack (the message carries moto's reasons).
    """
    assembly = Path(cloud_assembly_dir)
    template_path = assembly / f"{stack_name}.template.json"
    if not template_path.is_file():
        raise DeployError(f"no template for stack {stack_name!r} in {assembly}: run cdk synth")
    template = json.loads(template_path.read_text())
    _publish_assets(assembly, stack_name, endpoint_url)
    _ensure_bootstrap_parameter(template, endpoint_url)
    deployable, esm_templates = _without_event_source_mappings(template)

    cfn = client("cloudformation", endpoint_url)
    try:
        stack_id = cfn.create_stack(
            StackName=stack_name,
            TemplateBody=json.dumps(deployable),
            Capabilities=_CAPABILITIES,
        )["StackId"]
    except (ClientError, ResponseParserError) as exc:
        # moto creates the resources inside CreateStack, so a resource that fails makes
        # the call itself fail (often with a JSON body the query protocol cannot parse).
        raise DeployError(f"moto rejected stack {stack_name!r}: {_moto_reason(exc)}") from exc
    stack = _wait_for_create(cfn, stack_name, timeout_seconds)

    all_outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
    resolved = {k: v for k, v in all_outputs.items() if k.startswith(_ESM_OUTPUT_PREFIX)}
    outputs = {k: v for k, v in all_outputs.items() if k not in resolved}
    resources: dict[str, str] = {}
    types: dict[str, str] = {}
    for resource in cfn.describe_stack_resources(StackName=stack_name)["StackResources"]:
        logical_id = resource.get("LogicalResourceId")
        if logical_id:
            resources[logical_id] = resource.get("PhysicalResourceId", "")
            types[logical_id] = resource.get("ResourceType", "")
    skipped = {
        logical_id: body["Type"]
        for logical_id, body in deployable.get("Resources", {}).items()
        if logical_id not in resources
    }
    return DeployedStack(
        stack_name=stack_name,
        stack_id=stack_id,
        outputs=outputs,
        resources=resources,
        resource_types=types,
        skipped_resources=skipped,
        event_source_mappings=tuple(
            EventSourceMappingSpec(logical_id, _substitute(props, resolved))
            for logical_id, props in esm_templates.items()
        ),
    )


def _publish_assets(assembly: Path, stack_name: str, endpoint_url: str) -> None:
    manifest_path = assembly / f"{stack_name}.assets.json"
    if not manifest_path.is_file():
        return  # a stack without assets (e.g. a legacy synthesizer)
    manifest = json.loads(manifest_path.read_text())
    if manifest.get("dockerImages"):
        raise DeployError(f"{stack_name} has Docker image assets; moto cannot take those")
    s3 = client("s3", endpoint_url)
    created: set[str] = set()
    for asset_id, asset in manifest.get("files", {}).items():
        source = asset["source"]
        if "executable" in source:
            raise DeployError(f"asset {asset_id} is built by a command; not supported here")
        body = _asset_bytes(assembly / source["path"], source.get("packaging", "file"))
        for destination in asset["destinations"].values():
            region = destination.get("region", FAKE_REGION)
            bucket = _fill(destination["bucketName"], region)
            key = _fill(destination["objectKey"], region)
            if bucket not in created:
                _ensure_bucket(s3, bucket, region)
                created.add(bucket)
            s3.put_object(Bucket=bucket, Key=key, Body=body)


def _asset_bytes(path: Path, packaging: str) -> bytes:
    if packaging == "file":
        return path.read_bytes()
    if packaging != "zip":
        raise DeployError(f"asset packaging {packaging!r} of {path} is not supported")
    if not path.is_dir():
        raise DeployError(f"zip asset {path} is not a directory")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for file in sorted(p for p in path.rglob("*") if p.is_file()):
            info = zipfile.ZipInfo(file.relative_to(path).as_posix(), date_time=_ZIP_DATE)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, file.read_bytes())
    return buffer.getvalue()


def _fill(text: str, region: str) -> str:
    values = {"AccountId": FAKE_ACCOUNT_ID, "Region": region, "Partition": "aws"}
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], text)


def _ensure_bucket(s3: Any, bucket: str, region: str) -> None:
    try:
        s3.head_bucket(Bucket=bucket)
    except ClientError:
        kwargs: dict[str, Any] = {"Bucket": bucket}
        if region != "us-east-1":
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
        s3.create_bucket(**kwargs)


def _ensure_bootstrap_parameter(template: Mapping[str, Any], endpoint_url: str) -> None:
    """What ``cdk bootstrap`` leaves in SSM, so the ``BootstrapVersion`` parameter resolves."""
    parameter = template.get("Parameters", {}).get("BootstrapVersion")
    if not parameter or not str(parameter.get("Type", "")).startswith("AWS::SSM::Parameter"):
        return
    ssm = client("ssm", endpoint_url)
    name = parameter["Default"]
    try:
        ssm.get_parameter(Name=name)
    except ClientError:
        ssm.put_parameter(Name=name, Value=BOOTSTRAP_VERSION, Type="String")


_ESM_OUTPUT_PREFIX = "LocalAwsResolved"


def _without_event_source_mappings(
    template: Mapping[str, Any],
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The template minus its mappings; and each mapping's properties, with every
    intrinsic turned into a ``{"__output__": name}`` marker for a temporary output."""
    deployable = json.loads(json.dumps(template))
    resources: dict[str, Any] = deployable.get("Resources", {})
    esm_ids = [lid for lid, body in resources.items() if body.get("Type") == ESM_TYPE]
    outputs: dict[str, Any] = deployable.setdefault("Outputs", {})
    mappings: dict[str, Any] = {}
    counter = 0

    def mark(value: Any) -> Any:
        nonlocal counter
        if isinstance(value, dict):
            if len(value) == 1 and next(iter(value)).startswith(("Ref", "Fn::")):
                counter += 1
                name = f"{_ESM_OUTPUT_PREFIX}{counter}"
                outputs[name] = {"Value": value}
                return {"__output__": name}
            return {k: mark(v) for k, v in value.items()}
        if isinstance(value, list):
            return [mark(v) for v in value]
        return value

    for logical_id in esm_ids:
        mappings[logical_id] = mark(resources.pop(logical_id).get("Properties", {}))
    for logical_id, body in resources.items():
        if _mentions(body, esm_ids):
            raise DeployError(
                f"{logical_id} refers to an event source mapping, which is not deployed to "
                "moto (see local_aws.deploy)"
            )
    for name, output in list(outputs.items()):
        if _mentions(output, esm_ids):
            del outputs[name]
    if not outputs:
        del deployable["Outputs"]
    return deployable, mappings


def _mentions(node: Any, logical_ids: list[str]) -> bool:
    """Whether a Ref, GetAtt or DependsOn in ``node`` names one of ``logical_ids``."""
    if not logical_ids:
        return False
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "Ref" and value in logical_ids:
                return True
            if key == "Fn::GetAtt" and isinstance(value, list) and value[0] in logical_ids:
                return True
            if key == "DependsOn":
                depends = [value] if isinstance(value, str) else value
                if any(d in logical_ids for d in depends):
                    return True
            if _mentions(value, logical_ids):
                return True
    elif isinstance(node, list):
        return any(_mentions(v, logical_ids) for v in node)
    return False


def _substitute(value: Any, resolved: Mapping[str, str]) -> Any:
    if isinstance(value, dict):
        if set(value) == {"__output__"}:
            return resolved[value["__output__"]]
        return {k: _substitute(v, resolved) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, resolved) for v in value]
    return value


def _moto_reason(exc: Exception) -> str:
    """The ``__type: message`` of moto's JSON error body when there is one."""
    match = re.search(r"b'(\{.*\})'", str(exc), re.DOTALL)
    if match:
        try:
            body = json.loads(match.group(1))
        except ValueError:
            return str(exc)
        return f"{body.get('__type', 'Error')}: {body.get('message', '')}"
    return str(exc)


def _wait_for_create(cfn: Any, stack_name: str, timeout_seconds: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_seconds
    while True:
        stack: dict[str, Any] = cfn.describe_stacks(StackName=stack_name)["Stacks"][0]
        status = stack["StackStatus"]
        if status == "CREATE_COMPLETE":
            return stack
        if not status.endswith("_IN_PROGRESS"):
            raise DeployError(_failure_report(cfn, stack_name, stack))
        if time.monotonic() > deadline:
            raise DeployError(f"{stack_name} still {status} after {timeout_seconds:.0f}s")
        time.sleep(0.2)


def _failure_report(cfn: Any, stack_name: str, stack: Mapping[str, Any]) -> str:
    lines = [f"{stack_name}: {stack['StackStatus']} {stack.get('StackStatusReason') or ''}"]
    events = cfn.describe_stack_events(StackName=stack_name)["StackEvents"]
    for event in reversed(events):
        if "FAILED" in event.get("ResourceStatus", ""):
            lines.append(
                f"  {event.get('LogicalResourceId')} ({event.get('ResourceType')}): "
                f"{event.get('ResourceStatus')} {event.get('ResourceStatusReason') or ''}"
            )
    return "\n".join(line.rstrip() for line in lines)
