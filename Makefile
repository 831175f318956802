# The two commands the README promises, plus the chores behind them.
.PHONY: run test down crds release-manifests bench proptest chaos

## run: the main job — a local management cluster from test/harness, CAPI core, both providers,
## and a sample cluster reconciled, shown as it converges. `make run STANDALONE=1`: the
## standalone mode instead (no CAPI; a k0smotron.io Cluster and a JoinTokenRequest).
run:
	bash hack/demo.sh $(if $(filter 1,$(STANDALONE)),--standalone)

## test: everything CI runs (static checks, the main job once, harness, unit + snapshot +
## integration + e2e tests).
test:
	bash test/run-all.sh

## down: stop whatever `make run` or `make test` left running: the providers and the test
## infrastructure stand-in `make run` started, the real node, the harness.
down:
	bash hack/demo.sh --down
	test/harness/cluster down

## crds: regenerate config/crd/bases and charts/k0smotron/crds from the Rust types.
crds:
	cargo xtask crd

## release-manifests: write out/control-plane-components.yaml, out/bootstrap-components.yaml and
## out/k0smotron-standalone.yaml.
release-manifests:
	bash hack/release-manifests.sh

## bench: the scale benchmark (issue #11) on a private kwok harness: `N=100 make bench` (or
## BENCH_N); Markdown summary on stdout, JSON in bench/results/. See bench/README.md.
bench:
	@bash bench/run.sh

## proptest: the property tests' full run (issue #12), in release: PROPTEST_CASES (250000 by
## default) per property, 1.5 million generated cases in all, plus 200 cloud-init schema checks.
## `make test` runs the same properties at 256 cases each. See docs/security.md, "Property tests".
proptest:
	PROPTEST_CASES=$${PROPTEST_CASES:-250000} PROP_CLOUD_INIT_CASES=$${PROP_CLOUD_INIT_CASES:-200} \
		cargo test --release --locked -p controlplane-provider -p bootstrap-provider --test properties

## chaos: the fault tests (issue #12) on a private harness, full run: 50 seeds per kill scenario
## (CHAOS_SEEDS to change; CI runs 5). Prints the figures. See docs/chaos.md.
chaos:
	@CHAOS_SEEDS=$${CHAOS_SEEDS:-50} bash test/chaos.sh
