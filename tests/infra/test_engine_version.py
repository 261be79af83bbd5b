"""The database engine version: one the installed CDK library still lists as supported.

The CDK library marks an engine version ``:stability: deprecated`` when Amazon RDS stops creating
clusters on it; a template naming such a version fails at the database on the first ``cdk deploy``.
This reads the marks from the installed library (every ``AuroraPostgresEngineVersion`` constant and
its documentation), so upgrading aws-cdk-lib re-judges the choice without an edit here.
"""

from __future__ import annotations

import inspect
import re

import pytest

VERSION_IN_DOC = re.compile(r'Version "([0-9][0-9.]*)"')


def engine_versions() -> dict[str, bool]:
    """Every Aurora PostgreSQL version the installed CDK names → whether it is deprecated there."""
    from aws_cdk import aws_rds as rds

    versions: dict[str, bool] = {}
    for name, member in inspect.getmembers_static(rds.AuroraPostgresEngineVersion):
        getter = getattr(member, "fget", None)
        if not name.startswith("VER_") or getter is None or "LIMITLESS" in name:
            continue
        doc = inspect.getdoc(getter) or ""
        match = VERSION_IN_DOC.search(doc)
        assert match, f"AuroraPostgresEngineVersion.{name}: no version in its documentation: {doc[:80]!r}"
        deprecated = ":stability: deprecated" in doc
        versions[match.group(1)] = versions.get(match.group(1), False) or deprecated
    return versions


def test_the_installed_cdk_marks_versions_deprecated():
    # The check below is only as good as the marks it reads: some old versions must carry one.
    versions = engine_versions()
    assert versions.get("13.4") is True, "the CDK library no longer marks 13.4 deprecated: re-read how it marks"
    assert any(not deprecated for deprecated in versions.values())


def test_the_cluster_names_a_supported_engine_version(synth):
    (cluster,) = synth.resources("AWS::RDS::DBCluster").values()
    version = cluster["Properties"]["EngineVersion"]
    versions = engine_versions()
    if version not in versions:
        pytest.fail(f"EngineVersion {version!r} is not an Aurora PostgreSQL version the installed CDK knows")
    newer = sorted((v for v, old in versions.items() if not old and v.split(".")[0] == version.split(".")[0]),
                   key=lambda v: tuple(int(p) for p in v.split(".")))
    assert not versions[version], (
        f"EngineVersion {version} is deprecated in the installed CDK (RDS no longer creates clusters on it): "
        f"set AURORA_ENGINE_VERSION in infra/backend_stack.py to a current one, e.g. {newer[-1:]}")

