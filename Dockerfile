# syntax=docker/dockerfile:1
# soar's image for those who build with Docker (BuildKit). `make image` builds
# the same contents without a daemon; docs/operations.md#image says what is in
# it and how the two differ. Build with the version and commit `soar version`
# prints and the labels carry:
#
#   docker build -t ghcr.io/soar-dev/soar:$(git describe --tags --always --dirty) \
#     --build-arg VERSION=$(git describe --tags --always --dirty) \
#     --build-arg COMMIT=$(git rev-parse HEAD) \
#     --build-arg CREATED=$(git log -1 --format=%cI) .

# The builder runs on the build host's platform and cross-compiles: without
# cgo, soar needs nothing of the target but its GOARCH.
FROM --platform=$BUILDPLATFORM golang:1.26 AS build
ARG TARGETOS=linux
ARG TARGETARCH
ARG VERSION=dev
ARG COMMIT=
ENV GOTOOLCHAIN=local
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
	CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH \
	go build -trimpath -ldflags "-s -w -X main.version=${VERSION} -X main.commit=${COMMIT}" \
	-o /out/soar ./cmd/soar

# distroless/static's nonroot variant has the CA certificates, /etc/passwd
# with nonroot (65532) and /tmp, and no shell.
FROM gcr.io/distroless/static-debian12:nonroot
ARG VERSION=dev
ARG COMMIT=
ARG CREATED=
LABEL org.opencontainers.image.title="soar" \
	org.opencontainers.image.version="${VERSION}" \
	org.opencontainers.image.revision="${COMMIT}" \
	org.opencontainers.image.source="https://github.com/soar-dev/soar" \
	org.opencontainers.image.created="${CREATED}"
COPY --from=build /out/soar /usr/local/bin/soar
# Numeric, so that the kubelet can check runAsNonRoot without /etc/passwd.
USER 65532:65532
WORKDIR /home/nonroot
ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
ENTRYPOINT ["/usr/local/bin/soar"]
