"""Reviewed checkov suppressions, written into the template next to the resource they cover.

checkov reads ``Metadata: {checkov: {skip: [{id, comment}]}}`` on a CloudFormation
resource. Keeping each suppression on its resource (like cdk-nag's acknowledgements)
means a consumer who runs checkov on their own app inherits the same reviewed reasons,
and a new resource gets none by accident.
"""

from __future__ import annotations

from typing import Any

from aws_cdk import CfnResource
from constructs import IConstruct


def skip_checkov(construct: IConstruct, check_id: str, comment: str) -> None:
    """Suppress ``check_id`` on ``construct``'s CloudFormation resource, with a reason."""
    if not comment.strip():
        raise ValueError(f"{check_id}: a checkov suppression needs a reason")
    resource = construct if isinstance(construct, CfnResource) else construct.node.default_child
    if not isinstance(resource, CfnResource):
        raise TypeError(f"{construct.node.path} has no CloudFormation resource to annotate")
    current: Any = resource.get_metadata("checkov") or {}
    skips = [s for s in current.get("skip", []) if s.get("id") != check_id]
    skips.append({"id": check_id, "comment": comment})
    resource.add_metadata("checkov", {**current, "skip": skips})


LOG_GROUP_REASON = (
    "Operational JSON logs without secrets; CloudWatch Logs encrypts them at rest. A KMS "
    "key would need a key-policy grant to the Logs service and could stop logging.")


def skip_function_checks(function: IConstruct, log_group: IConstruct, *, invoked_by: str,
                         on_failure: str, calls: str, concurrency: str | None) -> None:
    """The checkov findings no pipeline function follows, each with its reason.

    ``invoked_by`` names the event source mapping and ``on_failure`` where failed
    batches go (CKV_AWS_116: no DLQ of the function's own); ``calls`` the services the
    function talks to (CKV_AWS_117: no VPC); ``concurrency`` why no concurrency is
    reserved (CKV_AWS_115), None when it is.
    """
    skip_checkov(function, "CKV_AWS_116", f"Invoked by {invoked_by}, not asynchronously: "
                 f"{on_failure}.")
    skip_checkov(function, "CKV_AWS_117", f"Calls only {calls} over TLS with IAM auth; a "
                 "VPC would add NAT or endpoints and no isolation.")
    skip_checkov(function, "CKV_AWS_173", "The environment holds the function's "
                 "configuration only, no secrets; Lambda encrypts it at rest.")
    if concurrency is not None:
        skip_checkov(function, "CKV_AWS_115", concurrency)
    skip_checkov(log_group, "CKV_AWS_158", LOG_GROUP_REASON)
