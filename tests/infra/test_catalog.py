"""Every function under functions/ is sized in infra/catalog.py, reserved concurrency and its reason
included: a new function folder fails here until its author writes the entry."""

from __future__ import annotations

from infra import catalog

ENTRY_HELP = (
    "add it to FUNCTION_SETTINGS in infra/catalog.py: FunctionSettings(timeout_s=..., memory_mb=..., "
    "why='...', reserved_concurrency=N, concurrency_why='what N copies at once are for')")


def sized_functions() -> list[str]:
    """Every function the backend stack deploys (the regional ones and the migration trigger)."""
    names = [n for n in catalog.available_functions() if n != catalog.EDGE_FUNCTION]
    assert names, "no functions/<name>/app.py found: every check below would pass vacuously"
    return names


def test_every_function_has_an_entry():
    missing = [n for n in sized_functions() if n not in catalog.FUNCTION_SETTINGS]
    assert not missing, f"functions without a FUNCTION_SETTINGS entry: {missing}; {ENTRY_HELP}"


def test_every_entry_reserves_concurrency_with_a_reason():
    for name in sized_functions():
        settings = catalog.settings_for(name)
        assert settings.reserved_concurrency >= 1, f"{name}: reserved_concurrency must be at least 1; {ENTRY_HELP}"
        assert len(settings.concurrency_why.split()) >= 4, f"{name}: concurrency_why needs a real reason; {ENTRY_HELP}"


def test_reserved_concurrency_leaves_the_unreserved_pool_aws_requires():
    # Lambda keeps at least 100 executions unreserved; docs/deploy.md asks for a 1000 quota.
    total = sum(catalog.settings_for(n).reserved_concurrency for n in sized_functions())
    assert total <= 1000 - 100, f"{total} reserved executions leave less than 100 unreserved in a 1000 quota"


def test_the_template_reserves_what_the_catalog_says(synth):
    for name, props in synth.functions().items():
        assert props["ReservedConcurrentExecutions"] == catalog.settings_for(name).reserved_concurrency, name
    if synth.backend.migration is not None:
        migrate = synth.backend_template["Resources"][synth.logical_id(synth.backend.migration)]["Properties"]
        assert migrate["ReservedConcurrentExecutions"] == 1
