"""The HTTP API: one route per contract route, its authorizer, integration, stage and CORS."""

from __future__ import annotations

from dramac_dev.routes import JWT, ROUTES
from infra import catalog


def _routes(synth) -> dict[str, dict]:
    return {r["Properties"]["RouteKey"]: r["Properties"]
            for r in synth.resources("AWS::ApiGatewayV2::Route").values()}


def _expected_routes(synth):
    return [r for r in ROUTES if r.function in synth.backend.functions]


def test_every_contract_route_of_an_existing_function_has_an_api_route(synth):
    assert set(_routes(synth)) == {r.route_key for r in _expected_routes(synth)}
    assert _expected_routes(synth), "the subscribe routes are on main"


def test_routes_of_functions_not_yet_merged_are_left_out(synth):
    missing = [r for r in ROUTES if r.function not in catalog.available_functions()]
    assert not {r.route_key for r in missing} & set(_routes(synth))


def test_jwt_routes_use_the_jwt_authorizer_and_public_routes_have_none(synth):
    (authorizer_id,) = synth.resources("AWS::ApiGatewayV2::Authorizer")
    routes = _routes(synth)
    for route in _expected_routes(synth):
        props = routes[route.route_key]
        if route.auth == JWT:
            assert props["AuthorizationType"] == "JWT", route.route_key
            assert props["AuthorizerId"] == {"Ref": authorizer_id}, route.route_key
        else:
            assert props.get("AuthorizationType", "NONE") == "NONE", route.route_key
            assert "AuthorizerId" not in props, route.route_key


def test_health_route_is_public(synth):
    assert _routes(synth)["GET /api/health"].get("AuthorizationType", "NONE") == "NONE"


def test_jwt_authorizer_takes_issuer_and_audience_from_context(synth):
    (authorizer,) = synth.resources("AWS::ApiGatewayV2::Authorizer").values()
    props = authorizer["Properties"]
    assert props["AuthorizerType"] == "JWT"
    assert props["JwtConfiguration"] == {"Issuer": "https://issuer.example.test/auth/v1",
                                         "Audience": ["authenticated"]}
    assert props["IdentitySource"] == ["$request.header.Authorization"]


def test_every_route_invokes_its_own_function(synth):
    integrations = synth.resources("AWS::ApiGatewayV2::Integration")
    routes = _routes(synth)
    for route in _expected_routes(synth):
        target = routes[route.route_key]["Target"]["Fn::Join"][1][1]["Ref"]
        props = integrations[target]["Properties"]
        assert props["IntegrationType"] == "AWS_PROXY"
        assert props["PayloadFormatVersion"] == "2.0"
        function = synth.logical_id(synth.backend.functions[route.function])
        assert props["IntegrationUri"] == {"Fn::GetAtt": [function, "Arn"]}, route.route_key


def test_stage_throttles_and_writes_access_logs(synth):
    (stage,) = synth.resources("AWS::ApiGatewayV2::Stage").values()
    props = stage["Properties"]
    assert props["StageName"] == "$default" and props["AutoDeploy"] is True
    assert props["DefaultRouteSettings"] == {"ThrottlingRateLimit": 100, "ThrottlingBurstLimit": 200}
    assert props["AccessLogSettings"]["DestinationArn"]["Fn::GetAtt"][1] == "Arn"
    assert "$context.requestId" in props["AccessLogSettings"]["Format"]


def test_cors_allows_the_dashboard_origin_from_context(synth):
    (api,) = synth.resources("AWS::ApiGatewayV2::Api").values()
    cors = api["Properties"]["CorsConfiguration"]
    assert cors["AllowOrigins"] == ["https://app.example.test"]
    assert "authorization" in cors["AllowHeaders"]


def test_api_takes_traffic_only_after_the_migration_ran(synth):
    trigger = next(k for k, v in synth.backend_template["Resources"].items() if v["Type"] == "Custom::Trigger")
    for type_ in ("AWS::ApiGatewayV2::Stage", "AWS::ApiGatewayV2::Route", "AWS::ApiGatewayV2::Integration"):
        for logical_id, resource in synth.resources(type_).items():
            assert trigger in resource.get("DependsOn", []), logical_id
