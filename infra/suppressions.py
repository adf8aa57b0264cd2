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
