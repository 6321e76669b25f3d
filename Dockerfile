# syntax=docker/dockerfile:1
#
# slobridge in a minimal image: a static binary (no C library), CA
# certificates, nothing else; it runs as an unprivileged user and needs no
# writable path but its data volume, so the root filesystem can be
# read-only:
#
#   docker build --build-arg VERSION=v0.3.0 --build-arg COMMIT=$(git rev-parse HEAD) \
#     --build-arg DATE=$(date -u +%Y-%m-%dT%H:%M:%SZ) -t slobridge .
#   docker run --read-only -v slobridge-data:/var/lib/slobridge \
#     -v $PWD/slobridge.yaml:/etc/slobridge/slobridge.yaml:ro -p 8080:8080 slobridge
#
# With PostgreSQL (store.driver: postgres) the data volume is not needed.

FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=v0.3.0-dev
ARG COMMIT=unknown
ARG DATE=unknown
RUN CGO_ENABLED=0 go build -trimpath -buildvcs=false -ldflags "-s -w -X main.buildVersion=${VERSION} -X main.buildCommit=${COMMIT} -X main.buildDate=${DATE}" -o /out/slobridge ./cmd/slobridge
RUN mkdir -p /out/data

FROM scratch
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /out/slobridge /usr/local/bin/slobridge
COPY --from=build --chown=65532:65532 /out/data /var/lib/slobridge
USER 65532:65532
EXPOSE 8080
VOLUME ["/var/lib/slobridge"]
ENTRYPOINT ["/usr/local/bin/slobridge"]
CMD ["serve", "--config", "/etc/slobridge/slobridge.yaml"]
