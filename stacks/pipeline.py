"""Delivery: a self-mutating CDK pipeline in the toolchain account that deploys every stage in order."""

from __future__ import annotations

from aws_cdk import Stack, pipelines
from aws_cdk import aws_codebuild as codebuild
from aws_cdk import aws_codepipeline as codepipeline
from constructs import Construct

from config.models import EnvironmentConfig, ToolchainConfig
from constructs_lib.delivery.asset_publishing import publisher_build_spec, stage_publisher
from constructs_lib.delivery.build_cache import BuildCache, cache_spec
from constructs_lib.delivery.cli_pins import pin_security_check_cli
from constructs_lib.delivery.github_oidc import GitHubDiffRole
from constructs_lib.delivery.notifications import PipelineNotifications
from constructs_lib.delivery.pipeline_nag import (
    acknowledge_pipeline_findings,
    harden_cross_region_support,
    ignore_cfn_lint_role_arn_false_positive,
)
from constructs_lib.delivery.registry import deployed_images
from constructs_lib.delivery.replacement_guard_step import replacement_guard_step
from constructs_lib.delivery.steps import (
    BUILD_COMPUTE,
    BUILD_IMAGE,
    CDK_ASSETS_CLI_VERSION,
    CDK_CLI_VERSION,
    PYTHON,
    awake_check_step,
    grant_connection_use,
    protected_routes,
    scan_gate_step,
    smoke_test_step,
    synth_build_spec,
    synth_step,
)
from constructs_lib.delivery.storage import PipelineArtifactStore
from constructs_lib.delivery.termination_protection import protected_stacks, termination_protection_step
from constructs_lib.delivery.test_action import ParallelTestAction
from constructs_lib.delivery.workload_inventory import expected_workloads
from k8s_charts.images import node_platforms
from stacks.stage import ErpStage

PIPELINE_NAME = "erp-platform"
# Construct id of the pipeline stack; a hand deploy builds its stage under a construct of the same id.
PIPELINE_ID = "ErpPipeline"


class PipelineStack(Stack):
    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        toolchain: ToolchainConfig,
        stages: list[EnvironmentConfig],
        **kwargs,
    ) -> None:
        super().__init__(scope, id, **kwargs)
        artifacts = PipelineArtifactStore(self, "Artifacts")
        build_cache = BuildCache(self, "BuildCache", access_logs=artifacts.access_logs)
        self.notifications = PipelineNotifications(
            self,
            "Notifications",
            emails=toolchain.notification_emails,
            chat=toolchain.chat,
            chat_name=f"{PIPELINE_NAME}-pipeline",
        )
        # The trigger below starts the pipeline (with path filters); the action's own detection stays off.
        source = pipelines.CodePipelineSource.connection(
            toolchain.repository,
            toolchain.branch,
            connection_arn=toolchain.connection_arn,
            trigger_on_push=False,
            # A full clone, not the default zip: the zip turns symlinks (lambda_handlers/*/kube_api.py) into files
            # holding the target's path, and the bundles would ship those.
            code_build_clone_output=True,
        )
        self.pipeline = pipelines.CodePipeline(
            self,
            "Pipeline",
            pipeline_name=PIPELINE_NAME,
            pipeline_type=codepipeline.PipelineType.V2,
            self_mutation=True,
            # Both CLIs from package.json (issue 18 item 11); the broadening check's is pinned below.
            cli_version=CDK_CLI_VERSION,
            cdk_assets_cli_version=CDK_ASSETS_CLI_VERSION,
            cross_account_keys=any(stage.account != toolchain.account for stage in stages),
            # Our own bucket (access logs, SSL only), encrypted with a CMK in every case: deploy roles
            # in the stage accounts are granted decrypt on it, which the AWS-managed key cannot allow.
            artifact_bucket=artifacts.bucket,
            publish_assets_in_parallel=False,
            synth=synth_step(source),
            code_build_defaults=pipelines.CodeBuildOptions(
                build_environment=codebuild.BuildEnvironment(build_image=BUILD_IMAGE)
            ),
            synth_code_build_defaults=pipelines.CodeBuildOptions(
                build_environment=codebuild.BuildEnvironment(build_image=BUILD_IMAGE, compute_type=BUILD_COMPUTE),
                partial_build_spec=synth_build_spec(cache_spec(BUILD_IMAGE, PYTHON)),
                cache=build_cache.cache,
            ),
            # Service images are built for their `image.architectures` (the ERP's: linux/amd64, the apps nodes are
            # x86): the x86 build image builds them natively (constructs_lib/delivery/registry.py). The publisher
            # is ours: the cdk-assets CLI cannot read this assembly (constructs_lib/delivery/asset_publishing.py).
            asset_publishing_code_build_defaults=pipelines.CodeBuildOptions(
                build_environment=codebuild.BuildEnvironment(build_image=BUILD_IMAGE),
                partial_build_spec=publisher_build_spec(),
            ),
        )
        stage_publisher(self)

        self.stages: list[ErpStage] = []
        for index, config in enumerate(stages):
            stage = ErpStage(self, config.stage_id, config=config)
            self.stages.append(stage)
            pre: list[pipelines.Step] = []
            stack_steps: dict[Stack, dict[str, list[pipelines.Step]]] = {}
            if index > 0 or config.production:
                pre = [
                    replacement_guard_step(
                        stage_name=config.stage_id, source=source, assembly=self.pipeline.synth, config=config
                    ),
                    pipelines.ManualApprovalStep(
                        f"Promote{config.stage_id}", comment=f"Deploy the scanned build to {config.name}?"
                    ),
                    pipelines.ConfirmPermissionsBroadening(
                        f"{config.stage_id}PermissionsBroadening",
                        stage=stage,
                        notification_topic=self.notifications.topic,
                    ),
                ]
                pipelines.Step.sequence(pre)
                # The gate reads the stage's own ECR repositories, which its Registry stack creates (and whose
                # deploy pulls the third-party images into the cache): it runs after that stack and before the
                # Cluster stack, the first to pull a third-party image (its Helm releases), so nothing in the
                # stage runs an image the gate has not passed.
                stack_steps.setdefault(stage.cluster, {"pre": [], "post": []})["pre"].append(
                    scan_gate_step(
                        stage_name=config.stage_id,
                        source=source,
                        config=config,
                        toolchain=toolchain,
                        images=deployed_images(stage, config),
                        platforms=node_platforms(config),
                    )
                )
            # CDK Pipelines never applies `termination_protection` (aws/aws-cdk#17871): a step does, right after
            # each stack that asks for it.
            for stack in protected_stacks([c for c in stage.node.children if isinstance(c, Stack)]):
                stack_steps.setdefault(stack, {"pre": [], "post": []})["post"].append(
                    termination_protection_step(config=config, stack=stack)
                )
            if config.schedule is not None:
                # A sleeping stage cannot take a deploy (webhooks without pods): fail before touching it.
                pre = [awake_check_step(config=config, source=source), *pre]
                pipelines.Step.sequence(pre)
            self.pipeline.add_stage(
                stage,
                pre=pre,
                stack_steps=[
                    pipelines.StackSteps(stack=stack, pre=steps["pre"], post=steps["post"])
                    for stack, steps in stack_steps.items()
                ],
                post=[
                    smoke_test_step(
                        config=config,
                        source=source,
                        url_output=stage.edge.url_output,
                        protected_routes=protected_routes(config),
                        workloads=[str(workload) for workload in expected_workloads(config)],
                    )
                ],
            )

        self.pipeline.build_pipeline()
        # Beside Synth in the Build stage; self-mutation (the next stage) waits for both.
        self.tests = ParallelTestAction(self, "Tests", pipeline=self.pipeline, cache=build_cache, artifacts=artifacts)
        build_cache.acknowledge_grants(self.pipeline.synth_project.role)
        pin_security_check_cli(self.pipeline)
        built = self.pipeline.pipeline
        grant_connection_use(built, toolchain.connection_arn)
        built.add_trigger(
            provider_type=codepipeline.ProviderType.CODE_STAR_SOURCE_CONNECTION,
            git_configuration=codepipeline.GitConfiguration(
                source_action=built.stages[0].actions[0],
                push_filter=[
                    codepipeline.GitPushFilter(
                        branches_includes=[toolchain.branch],
                        file_paths_excludes=list(toolchain.ignored_paths),
                    )
                ],
            ),
        )
        self.notifications.watch(built, production_stages=[c.stage_id for c in stages if c.production])
        artifacts.encrypt_build_projects()
        acknowledge_pipeline_findings(self.pipeline, artifacts)
        harden_cross_region_support(self.pipeline)
        ignore_cfn_lint_role_arn_false_positive(self.pipeline)
        self.diff_role = GitHubDiffRole(
            self,
            "GitHubDiff",
            repository=toolchain.repository,
            lookup_accounts=[
                (toolchain.account, toolchain.region),
                *((c.account, region) for c in stages for region in c.deploy_regions),
            ],
            provider_arn=toolchain.github_oidc_provider_arn,
        )
