"""The CDK app: one aggregator stack, checked by cdk-nag. Nothing else lives here."""

from aws_cdk import App, Validations
from cdk_nag import AwsSolutionsChecks

from infra import AggregatorStack

app = App()
env_name = str(app.node.try_get_context("env_name") or "dev")
AggregatorStack(app, f"StreamAggregator-{env_name}")
Validations.of(app).add_plugins(AwsSolutionsChecks(app))
app.synth()
