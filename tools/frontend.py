"""Build the ERP frontend (unchanged) for one environment and publish it to that environment's edge.

    python -m tools.frontend --env dev --src <checkout> [--config-dir config] [--out-dir dist]

Vite bakes import.meta.env.VITE_* into the bundle at BUILD time, so one build serves one environment: the values
come from the stage's SSM parameters ({ssm_prefix}/frontend/*, written by the Frontend stack) and are passed as
real environment variables, which win over the stale .env.production committed in the checkout. The build runs in
a temporary copy, so the checkout is never modified (a dev build without a lockfile resolves one there; production
refuses: its build must be reproducible).

Publishing is a careful `aws s3 sync --delete`: changed assets first, index.html after them, stale objects last, so
a visitor never receives an index.html that names an asset not yet (or no longer) in the bucket. Hashed assets are
immutable (a change is a new name), so only changed paths that already existed are invalidated: index.html (and
`/`, the default root object) on every real change, nothing for a new asset. Refusals exit 2 with one line.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import mimetypes
import os
import re
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import quote

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from config import CONFIG_DIR, ConfigError, load_environment
from config.models import EnvironmentConfig

# What the Frontend stack publishes below {ssm_prefix}/frontend/ (stacks/frontend.py, FRONTEND_PARAMETERS).
PARAMETERS = ("url", "user-pool-id", "user-pool-client-id", "region", "bucket", "bucket-region", "distribution-id")
# Never copied into the build's working copy: installed packages, an old build, the repository.
NOT_COPIED = ("node_modules", ".git")
LOCKFILES = ("package-lock.json", "npm-shrinkwrap.json")

# Vite names what it emits under build.assetsDir (default `assets/`) `[name]-[hash].[ext]`, the hash 8+ characters
# of base64url; files from public/ keep their names at the top (favicon.ico, apple-touch-icon.png: the directory
# check stops such a name from looking hashed).
ASSETS_DIR = "assets"
HASHED = re.compile(r"-[A-Za-z0-9_-]{8,}\.[a-z0-9]+$")
IMMUTABLE = "public, max-age=31536000, immutable"
REVALIDATE = "no-cache"  # cached, but checked with the bucket (ETag) before every use
SHORT = "public, max-age=300"
# Python's built-in table only (not /etc/mime.types: the result must not depend on the machine), plus what it lacks.
_MIME = mimetypes.MimeTypes()
for _ext, _type in {
    ".js": "text/javascript",
    ".mjs": "text/javascript",
    ".map": "application/json",
    ".webmanifest": "application/manifest+json",
    ".woff": "font/woff",
    ".woff2": "font/woff2",
    ".wasm": "application/wasm",
    ".webp": "image/webp",
    ".avif": "image/avif",
}.items():
    _MIME.add_type(_type, _ext)
DEFAULT_TYPE = "application/octet-stream"
MAX_INVALIDATION_PATHS = 3000  # CloudFront's limit per invalidation; above it, everything is invalidated
DELETE_BATCH = 1000  # DeleteObjects' limit

Runner = Callable[[list[str], Path, Mapping[str, str]], int]
Say = Callable[[str], None]


class FrontendError(Exception):
    """One line for the operator; printed as `frontend: <message>`, exit 2."""


@dataclass(frozen=True)
class Settings:
    """The stage's values, read from SSM."""

    url: str
    user_pool_id: str
    client_id: str
    region: str
    bucket: str
    bucket_region: str
    distribution_id: str

    def vite_env(self) -> dict[str, str]:
        """What the frontend reads at build time (src/config/api.js, src/config/cognito.js)."""
        return {
            "VITE_API_BASE_URL": self.url,
            # The notification poll base: the gateway routes /api/notifications.
            "VITE_WS_BASE_URL": f"{self.url}/api",
            "VITE_COGNITO_REGION": self.region,
            "VITE_COGNITO_USER_POOL_ID": self.user_pool_id,
            "VITE_COGNITO_CLIENT_ID": self.client_id,
        }


@dataclass
class PublishSummary:
    uploaded: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    invalidated: list[str] = field(default_factory=list)
    invalidation_id: str | None = None

    def line(self) -> str:
        paths = " ".join(self.invalidated) if self.invalidated else "none"
        return (
            f"uploaded {len(self.uploaded)}, unchanged {len(self.unchanged)}, deleted {len(self.deleted)}, "
            f"invalidated {paths}"
        )


def parameter_name(config: EnvironmentConfig, leaf: str) -> str:
    return f"{config.ssm_prefix}/frontend/{leaf}"


def read_settings(ssm: Any, config: EnvironmentConfig) -> Settings:
    """All parameters in one call; the first missing one (in PARAMETERS order) is named."""
    names = [parameter_name(config, leaf) for leaf in PARAMETERS]
    found = {p["Name"]: p["Value"] for p in ssm.get_parameters(Names=names)["Parameters"]}
    for name in names:
        if not found.get(name):
            raise FrontendError(f"stage {config.name} has no {name}: deploy it first (make deploy ENV={config.name})")
    values = dict(zip(PARAMETERS, (found[name] for name in names), strict=True))
    url = values["url"].rstrip("/")
    if not url.startswith("https://"):
        raise FrontendError(f"{parameter_name(config, 'url')} is {values['url']!r}, not an https URL")
    return Settings(
        url=url,
        user_pool_id=values["user-pool-id"],
        client_id=values["user-pool-client-id"],
        region=values["region"],
        bucket=values["bucket"],
        bucket_region=values["bucket-region"],
        distribution_id=values["distribution-id"],
    )


def check_source(src: Path, *, production: bool) -> None:
    """Refuse what cannot be built before anything is read from AWS or copied."""
    if not src.is_dir():
        raise FrontendError(f"--src {src}: not a directory (the frontend checkout, with its package.json)")
    if not (src / "package.json").is_file():
        raise FrontendError(f"--src {src}: no package.json (point it at the frontend folder of the checkout)")
    if production and not any((src / name).is_file() for name in LOCKFILES):
        raise FrontendError(
            f"--src {src}: no package-lock.json: a production build must be reproducible "
            "(commit a lockfile made with `npm install --package-lock-only`)"
        )


def run_npm(args: list[str], cwd: Path, env: Mapping[str, str]) -> int:
    """The real runner: npm's output goes straight to the terminal."""
    npm = shutil.which("npm", path=env.get("PATH"))
    if npm is None:
        raise FrontendError("npm not found on PATH (install Node.js 18+)")
    return subprocess.run([npm, *args], cwd=cwd, env=dict(env), check=False).returncode


def _relative_out_dir(out_dir: str) -> PurePosixPath:
    path = PurePosixPath(out_dir)
    if path.is_absolute() or not path.parts or ".." in path.parts:
        raise FrontendError(f"--out-dir {out_dir}: must be a folder inside the project (Vite's build.outDir)")
    return path


def build(
    src: Path,
    vite_env: Mapping[str, str],
    work: Path,
    *,
    production: bool,
    out_dir: str = "dist",
    runner: Runner = run_npm,
    say: Say = print,
) -> Path:
    """Build `src` in a copy under `work` with `vite_env` on top of this process's environment; return the build
    folder (inside `work`). `src` is never written to."""
    out = _relative_out_dir(out_dir)
    check_source(src, production=production)
    copy = work / "src"
    skipped = {*NOT_COPIED, out.parts[0]}
    shutil.copytree(
        src,
        copy,
        symlinks=True,
        ignore=lambda folder, names: [n for n in names if Path(folder) == src and n in skipped],
    )
    env = {**os.environ, **vite_env}
    for name, value in vite_env.items():
        say(f"{name}={value}")

    def npm(*args: str) -> None:
        code = runner(list(args), copy, env)
        if code != 0:
            raise FrontendError(f"`npm {' '.join(args)}` failed with exit code {code} (its output is above)")

    if not any((copy / name).is_file() for name in LOCKFILES):
        npm("install", "--package-lock-only", "--ignore-scripts", "--no-audit", "--no-fund")
        say(
            f"note: {src} has no package-lock.json; one was resolved for this build only, "
            "so this build is not reproducible"
        )
    # --include=dev: Vite is a devDependency, and NODE_ENV=production in the caller's shell would omit it.
    npm("ci", "--include=dev", "--no-audit", "--no-fund")
    npm("run", "build")
    built = copy.joinpath(*out.parts)
    check_build_dir(built, out_dir)
    return built


def check_build_dir(build_dir: Path, label: str | None = None) -> None:
    if not (build_dir / "index.html").is_file():
        raise FrontendError(f"{label or build_dir}/index.html missing: the build produced no app, nothing published")


def content_type(key: str) -> str:
    return _MIME.guess_type(key, strict=False)[0] or DEFAULT_TYPE


def cache_control(key: str) -> str:
    path = PurePosixPath(key)
    if path.suffix == ".html":
        return REVALIDATE
    if path.parts[0] == ASSETS_DIR and HASHED.search(path.name):
        return IMMUTABLE
    return SHORT


def _remote_etags(s3: Any, bucket: str) -> dict[str, str]:
    etags = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for obj in page.get("Contents", []):
            etags[obj["Key"]] = obj["ETag"].strip('"')
    return etags


def invalidation_paths(keys: list[str]) -> list[str]:
    paths = []
    for key in keys:
        paths.append("/" + quote(key, safe="/"))
        if key == "index.html":
            paths.append("/")  # the default root object: `/` is cached apart from /index.html
    return sorted(paths)


def publish(s3: Any, cloudfront: Any, bucket: str, distribution_id: str, build_dir: Path) -> PublishSummary:
    """Sync `build_dir` to `bucket` (assets, then HTML, then deletions) and invalidate the changed old paths."""
    check_build_dir(build_dir)
    local = {p.relative_to(build_dir).as_posix(): p for p in sorted(build_dir.rglob("*")) if p.is_file()}
    remote = _remote_etags(s3, bucket)
    summary = PublishSummary()
    changed = {}
    for key, path in local.items():
        body = path.read_bytes()
        digest = hashlib.md5(body, usedforsecurity=False)
        if remote.get(key) == digest.hexdigest():
            summary.unchanged.append(key)
        else:
            changed[key] = (body, base64.b64encode(digest.digest()).decode())
    # Everything an index.html could reference is in place before the index.html that references it.
    for key in sorted(changed, key=lambda k: (k.endswith(".html"), k)):
        body, md5 = changed[key]
        s3.put_object(
            Bucket=bucket,
            Key=key,
            Body=body,
            ContentMD5=md5,
            ContentType=content_type(key),
            CacheControl=cache_control(key),
        )
        summary.uploaded.append(key)
    stale = sorted(set(remote) - set(local))
    for start in range(0, len(stale), DELETE_BATCH):
        batch = stale[start : start + DELETE_BATCH]
        answer = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in batch], "Quiet": True})
        if answer.get("Errors"):
            first = answer["Errors"][0]
            raise FrontendError(f"s3://{bucket}/{first['Key']}: not deleted: {first.get('Message', first['Code'])}")
        summary.deleted.extend(batch)
    # A new name was never cached and a deleted hashed asset is never asked for by the new index.html.
    summary.invalidated = invalidation_paths([k for k in changed if k in remote])
    if summary.invalidated:
        paths = summary.invalidated if len(summary.invalidated) <= MAX_INVALIDATION_PATHS else ["/*"]
        answer = cloudfront.create_invalidation(
            DistributionId=distribution_id,
            InvalidationBatch={
                "Paths": {"Quantity": len(paths), "Items": paths},
                "CallerReference": f"tools.frontend-{uuid.uuid4()}",
            },
        )
        summary.invalidation_id = answer["Invalidation"]["Id"]
    return summary


def main(argv: list[str] | None = None, runner: Runner = run_npm) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.frontend", description=__doc__.split("\n\n")[0])
    parser.add_argument("--env", required=True)
    parser.add_argument("--src", required=True, type=Path, help="the frontend checkout (its package.json folder)")
    parser.add_argument("--config-dir", type=Path, default=CONFIG_DIR)
    parser.add_argument("--out-dir", default="dist", help="Vite's build.outDir, relative to --src")
    args = parser.parse_args(argv)
    try:
        try:
            config = load_environment(args.env, args.config_dir)
        except ConfigError as exc:
            raise FrontendError(str(exc)) from None
        src = args.src.resolve()
        _relative_out_dir(args.out_dir)
        check_source(src, production=config.production)
        settings = read_settings(boto3.client("ssm", region_name=config.region), config)
        with tempfile.TemporaryDirectory(prefix=f"{config.resource_prefix}-frontend-") as work:
            print(f"frontend: building {src} for {config.name} ({settings.url})")
            built = build(
                src,
                settings.vite_env(),
                Path(work),
                production=config.production,
                out_dir=args.out_dir,
                runner=runner,
            )
            print(f"frontend: publishing to s3://{settings.bucket} (distribution {settings.distribution_id})")
            summary = publish(
                boto3.client("s3", region_name=settings.bucket_region),
                boto3.client("cloudfront", region_name="us-east-1"),
                settings.bucket,
                settings.distribution_id,
                built,
            )
        print(f"frontend: {summary.line()}")
        print(f"frontend: {config.name} serves {settings.url}/")
    except FrontendError as exc:
        print(f"frontend: {exc}", file=sys.stderr)
        return 2
    except (ClientError, BotoCoreError) as exc:
        print(f"frontend: {args.env}: AWS refused or failed: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
