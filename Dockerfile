# syntax=docker/dockerfile:1.7
#
# Images of both providers, built from this workspace as fully static musl binaries:
#
#   docker build --target controlplane-provider -t ghcr.io/k0smotron-rs/controlplane-provider:dev .
#   docker build --target bootstrap-provider    -t ghcr.io/k0smotron-rs/bootstrap-provider:dev .
#
# Each image holds its provider at /manager (the path CAPI's Tilt tooling and the manifests in
# config/ expect) and runs as the distroless `nonroot` user (65532). For several platforms use
# `docker buildx build --platform linux/amd64,linux/arm64`: every platform compiles natively in
# its own build stage (under emulation when foreign), which avoids a cross C toolchain for aws-lc.

ARG RUST_VERSION=1.95
ARG ALPINE_VERSION=3.22

FROM docker.io/library/rust:${RUST_VERSION}-alpine${ALPINE_VERSION} AS build
# musl-dev/build-base: the C toolchain aws-lc-sys and ring compile with; cmake and perl: the
# fallback build path of aws-lc-sys.
RUN apk add --no-cache build-base musl-dev cmake perl
WORKDIR /src
COPY . .
# Rust's musl targets link statically by default; the flag makes that explicit, and the check
# below fails the build if anything still needs a dynamic loader.
ENV RUSTFLAGS="-C target-feature=+crt-static"
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --release --locked -p controlplane-provider -p bootstrap-provider \
    && mkdir -p /out \
    && cp target/release/controlplane-provider target/release/bootstrap-provider /out/ \
    && for bin in /out/*; do \
         if readelf -d "$bin" | grep -q NEEDED; then echo "$bin is not static" >&2; exit 1; fi; \
       done

FROM gcr.io/distroless/static-debian12:nonroot AS controlplane-provider
COPY --from=build /out/controlplane-provider /manager
USER 65532:65532
ENTRYPOINT ["/manager"]

FROM gcr.io/distroless/static-debian12:nonroot AS bootstrap-provider
COPY --from=build /out/bootstrap-provider /manager
USER 65532:65532
ENTRYPOINT ["/manager"]
