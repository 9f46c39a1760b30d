"""make frontend: the build gets the stage's values from SSM, and the publish never serves a broken page (moto, no AWS).

Two tests run real npm (offline) on tests/tools/fixtures/fake_frontend, whose `npm run build` stands in for Vite;
the others use a stub runner that writes the same kind of dist/ directly.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from tests.support.aws import use_fake_credentials
from tools.frontend import (
    IMMUTABLE,
    PARAMETERS,
    REVALIDATE,
    SHORT,
    FrontendError,
    build,
    invalidation_paths,
    main,
    publish,
    run_npm,
)

FAKE_FRONTEND = Path(__file__).resolve().parent / "fixtures" / "fake_frontend"
REGION = "ap-northeast-2"  # config/dev.yaml's region: SSM is read there
BUCKET_REGION = "us-east-1"
BUCKET = "erp-dev-site"
URL = "https://d111111abcdef8.cloudfront.net"
POOL = "ap-northeast-2_NEWPOOL"
CLIENT = "newclient123"
STALE = ("old.execute-api", "OLDPOOL", "oldclient")  # fake_frontend/.env.production's values
VITE_NAMES = (
    "VITE_API_BASE_URL",
    "VITE_WS_BASE_URL",
    "VITE_COGNITO_USER_POOL_ID",
    "VITE_COGNITO_CLIENT_ID",
    "VITE_COGNITO_REGION",
)


@pytest.fixture(autouse=True)
def fake_aws(monkeypatch):
    use_fake_credentials(monkeypatch, REGION)
    # Real npm, when a test uses it, never reaches the registry.
    monkeypatch.setenv("npm_config_offline", "true")
    monkeypatch.setenv("npm_config_update_notifier", "false")
    with mock_aws():
        yield


@pytest.fixture
def s3():
    client = boto3.client("s3", region_name=BUCKET_REGION)
    client.create_bucket(Bucket=BUCKET)
    return client


@pytest.fixture
def cloudfront():
    return boto3.client("cloudfront", region_name="us-east-1")


@pytest.fixture
def distribution(cloudfront):
    origin = {"Id": "site", "DomainName": f"{BUCKET}.s3.amazonaws.com", "S3OriginConfig": {"OriginAccessIdentity": ""}}
    config = {
        "CallerReference": "test",
        "Comment": "",
        "Enabled": True,
        "Origins": {"Quantity": 1, "Items": [origin]},
        "DefaultCacheBehavior": {"TargetOriginId": "site", "ViewerProtocolPolicy": "redirect-to-https"},
    }
    return cloudfront.create_distribution(DistributionConfig=config)["Distribution"]["Id"]


@pytest.fixture
def stage(s3, distribution):
    """What the Frontend stack publishes for dev (stacks/frontend.py)."""
    values = {
        "url": URL,
        "user-pool-id": POOL,
        "user-pool-client-id": CLIENT,
        "region": REGION,
        "bucket": BUCKET,
        "bucket-region": BUCKET_REGION,
        "distribution-id": distribution,
    }
    ssm = boto3.client("ssm", region_name=REGION)
    for leaf, value in values.items():
        ssm.put_parameter(Name=f"/erp/dev/frontend/{leaf}", Value=value, Type="String")
    return values


@pytest.fixture
def checkout(tmp_path):
    """A copy of the fake frontend, as a user's checkout."""
    src = tmp_path / "checkout"
    shutil.copytree(FAKE_FRONTEND, src)
    return src


def tree(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


class StubRunner:
    """npm without npm: records every call; `run build` writes what build.mjs writes (a hashed asset that holds the
    VITE_* values, the index.html naming it, a favicon)."""

    def __init__(self, *, fail: str | None = None, index: bool = True, extra: dict[str, str] | None = None):
        self.calls: list[list[str]] = []
        self.fail, self.index, self.extra = fail, index, extra or {}

    def __call__(self, args, cwd, env):
        self.calls.append(list(args))
        if args[0] == self.fail:
            return 1
        if args[0] == "install":
            (cwd / "package-lock.json").write_text("{}\n")
        if args[:2] == ["run", "build"]:
            write_dist(cwd / "dist", {name: env.get(name, "") for name in VITE_NAMES}, index=self.index)
            for key, text in self.extra.items():
                (cwd / "dist" / key).parent.mkdir(parents=True, exist_ok=True)
                (cwd / "dist" / key).write_text(text)
        return 0


def write_dist(dist: Path, values: dict[str, str], *, index: bool = True) -> Path:
    js = f"export const env = {json.dumps(values)};\n"
    asset = f"assets/index-{hashlib.sha256(js.encode()).hexdigest()[:8]}.js"
    (dist / "assets").mkdir(parents=True, exist_ok=True)
    (dist / asset).write_text(js)
    if index:
        (dist / "index.html").write_text(f'<!doctype html><script type="module" src="/{asset}"></script>\n')
    (dist / "favicon.ico").write_text("icon\n")
    return dist


def built(tmp_path: Path, name: str, url: str = URL, **extra: str) -> Path:
    """A build folder as the stub would leave it."""
    dist = write_dist(tmp_path / name, {"VITE_API_BASE_URL": url})
    for key, text in extra.items():
        (dist / key).parent.mkdir(parents=True, exist_ok=True)
        (dist / key).write_text(text)
    return dist


def bucket_keys(s3) -> set[str]:
    return {o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET).get("Contents", [])}


def invalidations(cloudfront, distribution) -> list[list[str]]:
    items = cloudfront.list_invalidations(DistributionId=distribution)["InvalidationList"].get("Items", [])
    paths = []
    for item in items:
        answer = cloudfront.get_invalidation(DistributionId=distribution, Id=item["Id"])
        paths.append(sorted(answer["Invalidation"]["InvalidationBatch"]["Paths"]["Items"]))
    return paths


# --- the build: values from SSM, a copy, a lockfile ---------------------------------------------------------------


def test_end_to_end_real_npm_bakes_the_stages_values_not_the_stale_env_file(stage, s3, checkout, capsys):
    before = tree(checkout)
    assert main(["--env", "dev", "--src", str(checkout)], runner=run_npm) == 0
    out = capsys.readouterr().out
    assert f"VITE_API_BASE_URL={URL}" in out and f"VITE_WS_BASE_URL={URL}/api" in out
    assert "frontend: uploaded 3, unchanged 0, deleted 0, invalidated none" in out
    keys = bucket_keys(s3)
    [asset] = [k for k in keys if k.startswith("assets/")]
    assert keys == {"index.html", "favicon.ico", asset}
    js = s3.get_object(Bucket=BUCKET, Key=asset)["Body"].read().decode()
    assert json.loads(js.removeprefix("export const env = ").rstrip(";\n")) == {
        "VITE_API_BASE_URL": URL,
        "VITE_WS_BASE_URL": f"{URL}/api",
        "VITE_COGNITO_USER_POOL_ID": POOL,
        "VITE_COGNITO_CLIENT_ID": CLIENT,
        "VITE_COGNITO_REGION": REGION,
    }
    assert not any(stale in js for stale in STALE)
    assert asset in s3.get_object(Bucket=BUCKET, Key="index.html")["Body"].read().decode()
    assert tree(checkout) == before  # no dist/, no node_modules/ in the user's checkout


def test_dev_without_lockfile_resolves_one_in_the_copy_only(checkout, tmp_path, capsys):
    (checkout / "package-lock.json").unlink()
    before = tree(checkout)
    calls = []

    def recording(args, cwd, env):
        calls.append(args)
        return run_npm(args, cwd, env)

    work = tmp_path / "work"
    work.mkdir()
    dist = build(checkout, {"VITE_API_BASE_URL": URL}, work, production=False, runner=recording)
    assert calls == [
        ["install", "--package-lock-only", "--ignore-scripts", "--no-audit", "--no-fund"],
        ["ci", "--include=dev", "--no-audit", "--no-fund"],
        ["run", "build"],
    ]
    assert "not reproducible" in capsys.readouterr().out
    assert (work / "src" / "package-lock.json").is_file() and (dist / "index.html").is_file()
    assert tree(checkout) == before


def test_production_refuses_a_checkout_without_lockfile(checkout, tmp_path):
    (checkout / "package-lock.json").unlink()
    runner = StubRunner()
    with pytest.raises(FrontendError, match=r"no package-lock.json: a production build must be reproducible"):
        build(checkout, {}, tmp_path, production=True, runner=runner)
    assert runner.calls == []


def test_the_copy_skips_node_modules_dist_and_git(checkout, tmp_path):
    for folder in ("node_modules/x", "dist", ".git"):
        (checkout / folder).mkdir(parents=True)
        (checkout / folder / "marker").write_text("old")
    (checkout / "src" / "dist").mkdir(parents=True)  # only the top-level ones are skipped
    runner = StubRunner()
    dist = build(checkout, {}, tmp_path, production=True, runner=runner)
    assert not (tmp_path / "src" / "node_modules").exists() and not (tmp_path / "src" / ".git").exists()
    assert "marker" not in tree(dist) and (tmp_path / "src" / "src" / "dist").is_dir()
    assert runner.calls == [["ci", "--include=dev", "--no-audit", "--no-fund"], ["run", "build"]]


@pytest.mark.parametrize("missing", ["url", "bucket", "distribution-id"])
def test_a_missing_parameter_refuses_before_anything_is_built(stage, s3, checkout, missing, capsys):
    ssm = boto3.client("ssm", region_name=REGION)
    ssm.delete_parameter(Name=f"/erp/dev/frontend/{missing}")
    runner = StubRunner()
    assert main(["--env", "dev", "--src", str(checkout)], runner=runner) == 2
    err = capsys.readouterr().err
    assert err == f"frontend: stage dev has no /erp/dev/frontend/{missing}: deploy it first (make deploy ENV=dev)\n"
    assert runner.calls == [] and bucket_keys(s3) == set()


def test_no_parameter_at_all_names_the_first(checkout, capsys):
    runner = StubRunner()
    assert main(["--env", "dev", "--src", str(checkout)], runner=runner) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"frontend: stage dev has no /erp/dev/frontend/{PARAMETERS[0]}: deploy it first (make deploy ENV=dev)"
    ]
    assert runner.calls == []


@pytest.mark.parametrize("kind", ["file", "missing", "no package.json"])
def test_a_source_that_is_not_a_frontend_is_refused(tmp_path, kind, capsys):
    src = tmp_path / "src"
    if kind == "file":
        src.write_text("")
    elif kind == "no package.json":
        src.mkdir()
    runner = StubRunner()
    assert main(["--env", "dev", "--src", str(src)], runner=runner) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and err.startswith(f"frontend: --src {src}: ")
    assert runner.calls == []


@pytest.mark.parametrize("step", ["ci", "run"])
def test_a_failing_npm_command_is_named_with_its_exit_code(stage, s3, checkout, step, capsys):
    runner = StubRunner(fail=step)
    assert main(["--env", "dev", "--src", str(checkout)], runner=runner) == 2
    command = "npm ci --include=dev --no-audit --no-fund" if step == "ci" else "npm run build"
    assert capsys.readouterr().err.splitlines() == [
        f"frontend: `{command}` failed with exit code 1 (its output is above)"
    ]
    assert bucket_keys(s3) == set()


def test_a_build_without_index_html_publishes_nothing(stage, s3, cloudfront, distribution, checkout, tmp_path, capsys):
    old = built(tmp_path, "old")
    publish(s3, cloudfront, BUCKET, distribution, old)
    before = {o["Key"]: o["ETag"] for o in s3.list_objects_v2(Bucket=BUCKET)["Contents"]}

    assert main(["--env", "dev", "--src", str(checkout)], runner=StubRunner(index=False)) == 2
    assert (
        capsys.readouterr().err == "frontend: dist/index.html missing: the build produced no app, nothing published\n"
    )

    (old / "index.html").unlink()  # publish checks on its own too
    (old / "assets" / "new-12345678.js").write_text("new")
    with pytest.raises(FrontendError, match="index.html missing"):
        publish(s3, cloudfront, BUCKET, distribution, old)
    assert {o["Key"]: o["ETag"] for o in s3.list_objects_v2(Bucket=BUCKET)["Contents"]} == before
    assert invalidations(cloudfront, distribution) == []


# --- the publish: headers, what is uploaded, order, invalidation -------------------------------------------------


def test_cache_and_content_headers_per_kind_of_file(s3, cloudfront, distribution, tmp_path):
    dist = built(
        tmp_path,
        "dist",
        **{
            "assets/logo-4f5e6a7b.svg": "<svg/>",
            "assets/index-B3xk-9_Q.css": "body{}",
            "assets/chunk-Ab12Cd34.mjs": "export {}",
            "robots.txt": "User-agent: *\n",
            "apple-touch-icon.png": "png",  # looks hashed, but public/ files keep their names: not immutable
            "data.unknownext": "?",
        },
    )
    publish(s3, cloudfront, BUCKET, distribution, dist)
    [asset] = [k for k in tree(dist) if k.startswith("assets/index-") and k.endswith(".js")]
    expected = {
        asset: ("text/javascript", IMMUTABLE),
        "assets/chunk-Ab12Cd34.mjs": ("text/javascript", IMMUTABLE),
        "assets/logo-4f5e6a7b.svg": ("image/svg+xml", IMMUTABLE),
        "assets/index-B3xk-9_Q.css": ("text/css", IMMUTABLE),
        "index.html": ("text/html", REVALIDATE),
        "favicon.ico": ("image/vnd.microsoft.icon", SHORT),
        "robots.txt": ("text/plain", SHORT),
        "apple-touch-icon.png": ("image/png", SHORT),
        "data.unknownext": ("application/octet-stream", SHORT),
    }
    assert bucket_keys(s3) == set(expected)
    for key, (content_type, cache) in expected.items():
        head = s3.head_object(Bucket=BUCKET, Key=key)
        assert (head["ContentType"], head["CacheControl"]) == (content_type, cache), key


def test_an_unchanged_build_uploads_and_invalidates_nothing(s3, cloudfront, distribution, tmp_path):
    first = publish(s3, cloudfront, BUCKET, distribution, built(tmp_path, "one"))
    assert (len(first.uploaded), first.unchanged, first.deleted, first.invalidated) == (3, [], [], [])
    again = publish(s3, cloudfront, BUCKET, distribution, built(tmp_path, "two"))  # the same content, rebuilt
    assert (again.uploaded, len(again.unchanged), again.deleted, again.invalidated) == ([], 3, [], [])
    assert again.line() == "uploaded 0, unchanged 3, deleted 0, invalidated none"
    assert invalidations(cloudfront, distribution) == []


def test_a_changed_build_replaces_the_asset_and_invalidates_only_index_html(s3, cloudfront, distribution, tmp_path):
    old = built(tmp_path, "old", url="https://old.example")
    publish(s3, cloudfront, BUCKET, distribution, old)
    new = built(tmp_path, "new", url=URL)
    [old_asset], [new_asset] = ([k for k in tree(d) if k.startswith("assets/")] for d in (old, new))
    assert old_asset != new_asset

    summary = publish(s3, cloudfront, BUCKET, distribution, new)
    assert summary.uploaded == [new_asset, "index.html"]
    assert summary.unchanged == ["favicon.ico"]
    assert summary.deleted == [old_asset]
    assert summary.invalidated == ["/", "/index.html"]  # not the new asset: it was never cached
    assert summary.line() == "uploaded 2, unchanged 1, deleted 1, invalidated / /index.html"
    assert bucket_keys(s3) == set(tree(new))
    assert invalidations(cloudfront, distribution) == [["/", "/index.html"]]


def test_assets_go_up_before_html_and_deletions_come_last(s3, cloudfront, distribution, tmp_path):
    publish(s3, cloudfront, BUCKET, distribution, built(tmp_path, "old", url="https://old.example", **{"x.txt": "x"}))
    calls = []

    class Recording:
        def __getattr__(self, name):
            method = getattr(s3, name)

            def call(**kwargs):
                calls.append((name, kwargs.get("Key") or [o["Key"] for o in kwargs["Delete"]["Objects"]]))
                return method(**kwargs)

            return call if name in ("put_object", "delete_objects") else method

    before = bucket_keys(s3)
    new = built(tmp_path, "new", **{"docs/about.html": "<p>", "robots.txt": "r", "zz.png": "z"})
    publish(Recording(), cloudfront, BUCKET, distribution, new)
    names = [name for name, _ in calls]
    puts = [key for name, key in calls if name == "put_object"]
    assert names == ["put_object"] * len(puts) + ["delete_objects"]
    html = [i for i, key in enumerate(puts) if key.endswith(".html")]
    assert html == [len(puts) - 2, len(puts) - 1]  # docs/about.html and index.html after every other file
    stale = calls[-1][1]
    assert stale == sorted(before - set(tree(new))) and "x.txt" in stale and len(stale) == 2  # x.txt, old asset


def test_invalidation_paths_are_quoted_with_a_leading_slash():
    assert invalidation_paths(["index.html", "img/a b.png", "fonts/ü*.woff2"]) == [
        "/",
        "/fonts/%C3%BC%2A.woff2",
        "/img/a%20b.png",
        "/index.html",
    ]
    assert invalidation_paths(["docs/index.html"]) == ["/docs/index.html"]  # only the root has a default object
