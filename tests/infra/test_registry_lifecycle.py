"""ECR lifecycle never expires a tag any environment pins (issue 12: "keep the last 50" could expire prod's tag)."""

from __future__ import annotations

import json

import pytest

from config.base import CI_TAG_PREFIX
from config.sections import ImageConfig
from constructs_lib.delivery.registry import lifecycle_may_expire
from tests.conftest import resources_of

OLD_RULES = [
    {"rulePriority": 1, "selection": {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 50}}
]


def registry_rules(stack_templates, env) -> dict[str, list[dict]]:
    registry = stack_templates[f"erp-{env}-registry"]
    return {
        r["Properties"]["RepositoryName"]: json.loads(r["Properties"]["LifecyclePolicy"]["LifecyclePolicyText"])[
            "rules"
        ]
        for r in resources_of(registry, "AWS::ECR::Repository").values()
    }


def test_the_old_count_rule_would_expire_a_pinned_tag():
    assert lifecycle_may_expire("1.0.0", OLD_RULES)


@pytest.mark.parametrize(
    ("tag", "rules", "expected"),
    [
        ("ci-abc", [{"selection": {"tagStatus": "tagged", "tagPrefixList": ["ci-"]}}], True),
        ("1.0.0", [{"selection": {"tagStatus": "tagged", "tagPrefixList": ["ci-"]}}], False),
        ("1.0.0", [{"selection": {"tagStatus": "untagged"}}], False),
        ("1.0.0", [{"selection": {"tagStatus": "tagged", "tagPatternList": ["1.*"]}}], True),
        ("2.0.0", [{"selection": {"tagStatus": "tagged", "tagPatternList": ["1.*"]}}], False),
    ],
)
def test_lifecycle_rule_matching(tag, rules, expected):
    assert lifecycle_may_expire(tag, rules) is expected


def test_every_pinned_tag_of_every_environment_survives(stack_templates, configs):
    checked = 0
    for env, config in configs.items():
        for service in config.services:
            if service.image.tag is None:
                continue
            repo = service.image.repository or f"{config.project}/{service.name}"
            # A tag pinned in ANY environment must survive in EVERY environment's repository of that name.
            for other in configs:
                other_rules = registry_rules(stack_templates, other).get(repo)
                if other_rules is not None:
                    assert not lifecycle_may_expire(service.image.tag, other_rules), (env, other, repo)
                    checked += 1
    assert checked > 0


def test_config_refuses_to_pin_a_ci_tag():
    with pytest.raises(ValueError, match=f"{CI_TAG_PREFIX}\\* tags are CI builds"):
        ImageConfig(repository="erp/x", tag=f"{CI_TAG_PREFIX}1234")
