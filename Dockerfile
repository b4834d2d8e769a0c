# convtrack as a container: built with the Rust toolchain, run from a
# distroless image as a non-root user, with no shell or package manager.
#   docker build -t convtrack .
#   docker run -p 8000:8000 -v convtrack-data:/data convtrack

FROM rust:1.94-slim-bookworm AS build
WORKDIR /src
COPY . .
# The registry and target directory are cached between builds; the binary is
# copied out of the cache mount before the layer ends.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p convtrack \
    && cp target/release/convtrack /usr/local/bin/convtrack \
    && mkdir -p /data

# glibc and libgcc (the binary's only shared libraries), CA certificates, and
# the `nonroot` user (uid 65532).
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /usr/local/bin/convtrack /usr/local/bin/convtrack
COPY --from=build --chown=65532:65532 /data /data
WORKDIR /data
USER 65532:65532
ENV CONVTRACK_LISTEN=0.0.0.0:8000 \
    DATABASE_URL=sqlite:///data/convtrack.db?mode=rwc \
    CONVTRACK_FIRST_ADMIN_KEY_FILE=/data/first-admin-key
EXPOSE 8000
VOLUME ["/data"]
HEALTHCHECK --interval=10s --timeout=6s --start-period=20s --retries=3 \
    CMD ["/usr/local/bin/convtrack", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/convtrack"]
CMD ["serve"]
