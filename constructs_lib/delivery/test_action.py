"""`make test` as its own CodeBuild action beside Synth in the pipeline's Build stage (issue 23 item 3).

CDK Pipelines puts only the synth step and the steps it depends on in the Build stage, and makes self-mutation
depend on the synth step alone (aws-cdk-lib 2.275, pipelines/lib/helpers-internal/pipeline-graph.js): a test step
there would run before Synth (as its dependency), and one in a wave would run after self-mutation. So the action
is added to the built CodePipeline's Build stage with Synth's run order. CodePipeline starts a stage's actions of
one run order together and the next stage (UpdatePipeline: self-mutation) only when every action of the stage has
succeeded: tests and synth run in parallel, and a red test run stops the execution before the pipeline mutates
or anything deploys.
"""

from __future__ import annotations

from aws_cdk import Duration, Stack, pipelines
from aws_cdk import aws_codebuild as codebuild
from aws_cdk import aws_codepipeline as codepipeline
from aws_cdk import aws_codepipeline_actions as codepipeline_actions
from constructs import Construct

from constructs_lib.common.nag import acknowledge
from constructs_lib.delivery.build_cache import RESTORE, SAVE, BuildCache, cache_spec
from constructs_lib.delivery.steps import BUILD_COMPUTE, BUILD_IMAGE, PYTHON, SYNTH_ID
from constructs_lib.delivery.storage import PipelineArtifactStore

TEST_ACTION = "Test"
# `make test` runs the whole suite (-n 2) and installs MariaDB; 4x the suite's wall time on a 2-core machine.
TIMEOUT = Duration.minutes(30)


def build_stage(pipeline: pipelines.CodePipeline) -> codepipeline.IStage:
    (stage,) = [s for s in pipeline.pipeline.stages if s.stage_name == "Build"]
    return stage


class ParallelTestAction(Construct):
    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        pipeline: pipelines.CodePipeline,
        cache: BuildCache,
        artifacts: PipelineArtifactStore,
    ) -> None:
        super().__init__(scope, id)
        stage = build_stage(pipeline)
        (synth,) = [a for a in stage.actions if a.action_properties.action_name == SYNTH_ID]
        (source,) = pipeline.pipeline.stages[0].actions
        (source_output,) = source.action_properties.outputs
        self.project = codebuild.PipelineProject(
            self,
            "Project",
            environment=codebuild.BuildEnvironment(build_image=BUILD_IMAGE, compute_type=BUILD_COMPUTE),
            build_spec=codebuild.BuildSpec.from_object(
                {
                    "version": "0.2",
                    "phases": {
                        "install": {"runtime-versions": {"python": PYTHON}, "commands": [RESTORE]},
                        # `make test` (and only it) installs MariaDB for the SQL tests (Makefile: system-deps).
                        "build": {"commands": ["make setup", SAVE, "make test"]},
                    },
                    "cache": cache_spec(BUILD_IMAGE, PYTHON),
                }
            ),
            cache=cache.cache,
            encryption_key=artifacts.key,
            timeout=TIMEOUT,
        )
        stage.add_action(
            codepipeline_actions.CodeBuildAction(
                action_name=TEST_ACTION,
                project=self.project,
                input=source_output,
                type=codepipeline_actions.CodeBuildActionType.TEST,
                run_order=synth.action_properties.run_order or 1,
            )
        )
        cache.acknowledge_grants(self.project.role)
        stack = Stack.of(self)
        bucket = stack.resolve(stack.get_logical_id(artifacts.bucket.node.default_child))
        acknowledge(
            self.project.role,
            f"AwsSolutions-IAM5[Resource::<{bucket}.Arn>/*]",
            "Reads the source artifact from the pipeline's artifact bucket; CodePipeline names its objects per run.",
        )
        for action in ("kms:ReEncrypt*", "kms:GenerateDataKey*"):
            acknowledge(
                self.project.role,
                f"AwsSolutions-IAM5[Action::{action}]",
                "Use of the pipeline's artifact key, to read the source artifact it encrypts; no other key.",
            )
