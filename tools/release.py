"""Release a service version through git: set its image tag in config/<env>.yaml, comments and layout kept.

    make release SERVICE=notification-service TAG=1.2.0 ENV=dev
    python -m tools.release --service notification-service --tag 1.2.0 --env dev

The edit is the whole release: commit it, the pull request shows the `cdk diff` (.github/workflows/cdk-diff.yml),
and merging deploys it (the pipeline). Refuses `latest`, unknown services and unknown environments with one
line, and re-validates the edited file with the same rules as synth before writing it.
"""

from __future__ import annotations

import argparse
import io
import re
import sys
import tempfile
from pathlib import Path

from ruamel.yaml import YAML

from config import CONFIG_DIR, ConfigError, environment_names, load_environment

TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")  # what a Docker tag may be


class ReleaseError(Exception):
    """One line for the person releasing."""


def release(service: str, tag: str, env: str, config_dir: Path = CONFIG_DIR) -> str:
    """Set services[service].image.tag = tag in config_dir/<env>.yaml; returns the previous tag (or digest)."""
    known_envs = environment_names(config_dir)
    if env not in known_envs:
        raise ReleaseError(f"unknown environment {env!r} (known: {', '.join(known_envs)})")
    if tag == "latest":
        raise ReleaseError("tag 'latest' is not allowed: release a version (git is the source of truth)")
    if not TAG.match(tag):
        raise ReleaseError(f"{tag!r} is not a valid image tag")
    path = config_dir / f"{env}.yaml"
    yaml = YAML()  # round-trip: comments, key order, flow style and quotes survive
    yaml.preserve_quotes = True
    yaml.width = 4096
    yaml.indent(mapping=2, sequence=4, offset=2)  # the layout of config/*.yaml
    data = yaml.load(path.read_text(encoding="utf-8"))
    services = {s["name"]: s for s in data.get("services", [])}
    if service not in services:
        raise ReleaseError(f"unknown service {service!r} in {path.name} (known: {', '.join(services)})")
    image = services[service]["image"]
    if "build_dir" in image:
        raise ReleaseError(f"{service} is built from {image['build_dir']} in {path.name}, not released by tag")
    previous = image.get("tag") or image.get("digest")
    image["tag"] = tag
    image.pop("digest", None)  # a digest would pin something else than the tag now named
    out = io.StringIO()
    yaml.dump(data, out)
    text = out.getvalue()
    # Validate exactly what would be written, with the rules synth applies, before touching the real file.
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / f"{env}.yaml").write_text(text, encoding="utf-8")
        try:
            load_environment(env, Path(tmp))
        except ConfigError as exc:
            raise ReleaseError(str(exc)) from None
    path.write_text(text, encoding="utf-8")
    return previous


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.release", description=__doc__.split("\n\n")[0])
    parser.add_argument("--service", required=True)
    parser.add_argument("--tag", required=True)
    parser.add_argument("--env", required=True)
    args = parser.parse_args(argv)
    try:
        previous = release(args.service, args.tag, args.env)
    except ReleaseError as exc:
        print(f"release refused: {exc}", file=sys.stderr)
        return 2
    print(f"config/{args.env}.yaml: {args.service} {previous} -> {args.tag}; commit it and open a pull request")
    return 0


if __name__ == "__main__":
    sys.exit(main())
