"""The CDK app: the usage aggregator and one example stack per other seed system.

cdk-nag's AwsSolutions pack checks every stack. ``npx cdk deploy StreamAggregator-dev``
deploys the aggregator alone; ``--all`` deploys the examples too.
"""

from aws_cdk import App, Validations
from cdk_nag import AwsSolutionsChecks

from infra import AggregatorStack
from infra.stacks.bundles_stack import BundlesStack
from infra.stacks.event_metrics_stack import EventMetricsStack
from infra.stacks.projection_stack import ProjectionStack

app = App()
env_name = str(app.node.try_get_context("env_name") or "dev")
AggregatorStack(app, f"StreamAggregator-{env_name}")
EventMetricsStack(app, f"EventMetrics-{env_name}")
BundlesStack(app, f"Bundles-{env_name}")
ProjectionStack(app, f"SentimentProjection-{env_name}")
Validations.of(app).add_plugins(AwsSolutionsChecks(app))
app.synth()
