"""One Lambda per functions/<name>: handler, runtime, architecture, layer, environment, network."""

from __future__ import annotations

import importlib.util
import sys
import tomllib

import pytest

from infra import catalog

_spec = importlib.util.spec_from_file_location("dramac_layer_build", catalog.LAYER_SOURCE_DIR / "build.py")
build = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(build)

CURRENT_PYTHON = {"python3.12", "python3.13"}


def test_every_function_folder_becomes_a_lambda_with_the_app_handler(any_synth):
    folders = set(catalog.regional_functions(any_synth.backend.functions_dir))
    functions = any_synth.functions()
    assert set(functions) == folders
    assert {props["Handler"] for props in functions.values()} == {"app.handler"}


def test_every_function_runs_on_arm64(any_synth):
    for name, props in any_synth.functions().items():
        assert props["Architectures"] == ["arm64"], name


def test_every_function_uses_a_current_python_runtime(any_synth):
    for name, props in any_synth.functions().items():
        assert props["Runtime"] in CURRENT_PYTHON, name


def test_migration_function_matches_the_others(synth):
    props = synth.backend_template["Resources"][synth.logical_id(synth.backend.migration)]["Properties"]
    assert (props["Handler"], props["Runtime"], props["Architectures"]) == ("app.handler", "python3.13", ["arm64"])


def test_every_function_has_the_shared_layer(any_synth):
    layer = {"Ref": any_synth.logical_id(any_synth.backend.layer)}
    for name, props in any_synth.functions().items():
        assert props["Layers"] == [layer], name


def test_every_function_sets_powertools_environment(any_synth):
    for name, props in any_synth.functions().items():
        env = props["Environment"]["Variables"]
        assert env["POWERTOOLS_SERVICE_NAME"] == name
        assert env["POWERTOOLS_METRICS_NAMESPACE"] == "Dramac"
        assert env["LOG_LEVEL"] == "INFO"


def test_every_function_traces_with_xray(any_synth):
    for name, props in any_synth.functions().items():
        assert props["TracingConfig"] == {"Mode": "Active"}, name


def test_every_function_timeout_and_memory_come_from_the_settings_table(any_synth):
    for name, props in any_synth.functions().items():
        settings = catalog.settings_for(name)
        assert (props["Timeout"], props["MemorySize"]) == (settings.timeout_s, settings.memory_mb), name


def test_every_function_runs_in_the_private_app_subnets(any_synth):
    stack = any_synth.backend
    private = sorted(stack.get_logical_id(s.node.default_child) for s in stack.vpc.private_subnets)
    sg = {"Fn::GetAtt": [any_synth.logical_id(stack.function_security_group), "GroupId"]}
    for name, props in any_synth.functions().items():
        vpc = props["VpcConfig"]
        assert sorted(ref["Ref"] for ref in vpc["SubnetIds"]) == private, name
        assert vpc["SecurityGroupIds"] == [sg], name


def test_database_functions_reach_aurora_through_the_proxy_with_the_secret(any_synth):
    stack = any_synth.backend
    proxy = any_synth.logical_id(stack.proxy)
    for name, props in any_synth.functions().items():
        env = props["Environment"]["Variables"]
        assert env["DATABASE_PROXY_HOST"] == {"Fn::GetAtt": [proxy, "Endpoint"]}, name
        assert env["DATABASE_SECRET_ARN"] == {"Ref": any_synth.logical_id(stack.cluster.node.find_child("Secret")
                                                                        .node.find_child("Attachment"))}, name
        assert env["DATABASE_NAME"] == "dramac"


def test_functions_with_api_key_routes_verify_bearers_against_the_authorizers_issuer(any_synth):
    from dramac_dev.routes import JWT_OR_API_KEY, ROUTES

    issuer = str(any_synth.backend.config.jwt_issuer).rstrip("/")
    key_functions = {r.function for r in ROUTES if r.auth == JWT_OR_API_KEY}
    assert {"module_api", "automation"} <= key_functions
    for name, props in any_synth.functions().items():
        env = props["Environment"]["Variables"]
        if name in key_functions:
            assert (env["DRAMAC_JWT_ISSUER"], env["DRAMAC_JWT_JWKS_URL"], env["DRAMAC_JWT_AUDIENCE"]) == (
                issuer, f"{issuer}/.well-known/jwks.json", "authenticated"), name
        else:
            assert "DRAMAC_JWT_JWKS_URL" not in env, name


def test_provisioner_has_reserved_concurrency(synth):
    props = synth.functions()["provision"]
    assert props["ReservedConcurrentExecutions"] == catalog.FUNCTION_SETTINGS["provision"].reserved_concurrency
    assert props["ReservedConcurrentExecutions"] >= 1


def test_purchase_gets_the_paddle_webhook_secret_by_dynamic_reference(synth):
    env = synth.functions()["purchase"]["Environment"]["Variables"]
    secret = synth.logical_id(synth.backend.secrets[catalog.PADDLE_WEBHOOK_SECRET])
    assert env["PADDLE_WEBHOOK_SECRET"] == {
        "Fn::Join": ["", ["{{resolve:secretsmanager:", {"Ref": secret}, ":SecretString:::}}"]]}
    others = [n for n, p in synth.functions().items() if "PADDLE_WEBHOOK_SECRET" in p["Environment"]["Variables"]]
    assert others == ["purchase"]


def test_layer_build_targets_the_functions_runtime():
    from infra.backend_stack import RUNTIME
    assert RUNTIME.name == f"python{build.PYTHON_VERSION}"
    assert all(p.endswith("_aarch64") for p in build.PLATFORMS)


def test_layer_build_ships_only_the_runtime_dependencies():
    with (catalog.PROJECT_ROOT / "pyproject.toml").open("rb") as f:
        project = tomllib.load(f)["project"]
    assert build.runtime_requirements() == project["dependencies"]
    assert not {"pytest", "aws-cdk-lib", "moto"} & {r.split(">")[0].split("[")[0] for r in build.runtime_requirements()}


def test_layer_build_asks_pip_only_for_lambda_platform_wheels(tmp_path):
    command = build.pip_command(tmp_path, ["psycopg[binary]"], "3.13")
    assert "--only-binary=:all:" in command
    assert command[command.index("--python-version") + 1] == "3.13"
    assert command[command.index("--implementation") + 1] == "cp"
    assert [command[i + 1] for i, arg in enumerate(command) if arg == "--platform"] == list(build.PLATFORMS)


def test_layer_bytecode_is_hash_based_and_never_rechecked_against_the_sources(tmp_path):
    """Compiled by an interpreter of the right version (here this one), each module gets a .pyc whose header
    says 'hash-based, unchecked' (PEP 552 flags 0b01): used whatever mtimes the asset zip gives the sources."""
    version = f"{sys.version_info[0]}.{sys.version_info[1]}"
    assert build.find_interpreter(version, sys.executable) == sys.executable
    assert build.find_interpreter("2.7", sys.executable) is None  # a named interpreter of another version
    package = tmp_path / "python" / "pkg"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("VALUE = 42\n")
    (package / "broken_fixture.py").write_text("def (:\n")  # data some packages ship: skipped, not fatal
    assert build.compile_bytecode(tmp_path / "python", sys.executable) == 1
    [pyc] = (package / "__pycache__").glob("__init__.*.pyc")
    assert pyc.name == f"__init__.{sys.implementation.cache_tag}.pyc"
    assert int.from_bytes(pyc.read_bytes()[4:8], "little") == 0b01


def test_the_layer_build_refuses_to_ship_without_bytecode_unless_told(tmp_path, monkeypatch):
    monkeypatch.setattr(build, "find_interpreter", lambda version, explicit=None: None)
    with pytest.raises(build.BuildError, match=r"no Python 3\.13 interpreter"):
        build.build(tmp_path / "layer", "3.13")
    assert not (tmp_path / "layer").exists()  # refused before anything was written


@pytest.mark.parametrize("name", sorted(catalog.FUNCTION_SETTINGS))
def test_every_function_setting_explains_its_sizing(name):
    assert len(catalog.FUNCTION_SETTINGS[name].why) > 20
