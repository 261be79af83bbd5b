# The README's two commands: `make dev` and `make test`. Both create .venv/ and install when needed.
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed
DEV_STAMP := $(VENV)/.installed-dev
TOOLS := $(VENV)/tools
ARGS ?=
export JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION := 1

.PHONY: dev test install tools migrate lint typecheck bench clean layer synth openapi

# Byte-compiling was half of an install: pip compiles one file at a time, and aws-cdk-lib alone ships
# 180 MB of Python of which the CDK app imports a few dozen modules. So pip installs without
# compiling, compileall compiles everything else on every core, and the CDK modules the app uses are
# compiled when first imported. (The pip that comes with Python 3.11+ does all this; no upgrade step.)
#
# Two stamps: `make dev` installs only the local stack's extra ([dev]: no CDK, no test tools), so a
# fresh clone reaches `ready` quickly; `make test`, `make synth` and `make install` add the rest ([test]).
$(DEV_STAMP): pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --no-compile -e '.[dev]'
	$(VENV)/bin/python -m compileall -q -j 0 -x '/aws_cdk/' $(VENV)/lib
	touch $(DEV_STAMP)

$(STAMP): pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --no-compile -e '.[test]'
	$(VENV)/bin/python -m compileall -q -j 0 -x '/aws_cdk/' $(VENV)/lib
	touch $(STAMP) $(DEV_STAMP)

# Tools whose pins clash with the project's get a venv each: .venv/tools/<name> from tools/<name>.txt
$(TOOLS)/%/.installed: tools/%.txt
	test -x $(TOOLS)/$*/bin/python || $(PYTHON) -m venv $(TOOLS)/$*
	$(TOOLS)/$*/bin/python -m pip install --quiet -r tools/$*.txt
	touch $@

install: $(STAMP)

tools: $(TOOLS)/checkov/.installed $(TOOLS)/sam/.installed

dev: $(DEV_STAMP)
	$(VENV)/bin/dramac dev $(ARGS)

# The npm packages of package.json: the JavaScript clients the e2e tests drive (@supabase/postgrest-js,
# @supabase/supabase-js) and the CDK CLI. npm ci installs exactly package-lock.json (from npm's cache: seconds).
NODE_MODULES := node_modules/.package-lock.json
$(NODE_MODULES): package-lock.json
	npm ci --no-audit --no-fund --loglevel=error

# The whole check: lint, types, then every test (CI runs .ci/run, which runs this).
test: lint typecheck tools $(NODE_MODULES)
	$(VENV)/bin/python -m pytest $(ARGS)

migrate: $(STAMP)
	$(VENV)/bin/dramac migrate

bench: $(STAMP)
	$(VENV)/bin/python -m bench.run $(ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .

# mypy: strict on the layer (pyproject.toml), checked on the dev tools, the router and each function.
# Every function's entry point is an app.py, so each is checked on its own (one module name each).
typecheck: $(STAMP)
	$(VENV)/bin/mypy -p dramac_common -p dramac_dev -p edge_router -p bench
	for f in functions/*/app.py functions/domain_router/bundle.py; do $(VENV)/bin/mypy "$$f" || exit 1; done

# The merged OpenAPI 3.1 document of every HTTP function (checked in; tests/unit/test_openapi.py fails
# when it is stale). `dramac dev` serves it with Swagger UI at /api/docs.
openapi: $(DEV_STAMP)
	$(VENV)/bin/dramac openapi

# The Lambda layer for deployment: dramac_common + runtime wheels for arm64 Lambda (docs/deploy.md).
layer: $(STAMP)
	$(VENV)/bin/python layers/common/build.py

# Synthesize the CDK app offline with the CDK CLI from package.json (npm ci first).
synth: $(STAMP)
	npx --no-install cdk synth --quiet $(ARGS)

clean:
	rm -rf $(VENV) .dramac cdk.out build
