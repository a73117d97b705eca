# reset-pipeline: a multi-stage build to a small, non-root runtime image.
#   docker build -t reset-pipeline .
# The Helm chart's default image (helm/reset-pipeline/values.yaml) is this one.

FROM rust:1.95-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends libssl-dev pkg-config \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# Dependencies first, so a source change does not rebuild librdkafka.
COPY Cargo.toml Cargo.lock ./
RUN mkdir -p src benches \
 && echo 'fn main() {}' > src/main.rs && touch src/lib.rs \
 && for b in $(grep -A1 '^\[\[bench\]\]' Cargo.toml | sed -n 's/^name = "\(.*\)"$/\1/p'); do \
      echo 'fn main() {}' > benches/$b.rs; done \
 && cargo build --release --locked --bin reset-pipeline \
 && rm -rf src benches
COPY src src
COPY schemas schemas
# Cargo.toml names the benches, so their files must exist for any build.
COPY benches benches
RUN touch src/main.rs src/lib.rs && cargo build --release --locked --bin reset-pipeline

# glibc, libssl and CA certificates, no shell; runs as uid 65532 (nonroot).
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/reset-pipeline /usr/local/bin/reset-pipeline
USER 65532:65532
EXPOSE 9898
ENTRYPOINT ["/usr/local/bin/reset-pipeline"]
CMD ["run", "--config", "/etc/reset-pipeline/config.yaml"]
