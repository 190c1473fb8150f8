# Build: the release binary, with SQLite compiled in (rusqlite's bundled feature).
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin eventtracker

# Run: a small image with only the binary and its configuration, as a non-root user.
FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /app eventtracker \
    && mkdir -p /app/data && chown eventtracker /app/data
WORKDIR /app
COPY --from=build /src/target/release/eventtracker /usr/local/bin/eventtracker
COPY config/ /app/config/
USER eventtracker
ENV API_SERVER_HOST=0.0.0.0 API_SERVER_PORT=3000 SQLITE_PATH=/app/data/eventtracker.db
EXPOSE 3000
VOLUME ["/app/data"]
HEALTHCHECK --interval=10s --timeout=3s --retries=3 CMD curl -fsS http://127.0.0.1:3000/healthz || exit 1
CMD ["eventtracker", "serve"]
